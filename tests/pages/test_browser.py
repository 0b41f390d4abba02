"""An operator's first session, in a real Chromium against the running app.

Upload a debtor file (dropped on the uploader), check the preview, import it; read the
Overview (the default page, at "/"); find a charge on the Charges page by a name, open it
by its debtId, open it again from its link (?charge=ID) and download its boleto. Each
step is a subtest, so a page not registered in app.py yet is reported as skipped without
hiding the others. Screenshots of every step, and of the screen when a step fails, go to
test-artifacts/browser/.

Needs the `playwright` package (no browser download: Debian's chromium is used,
`apt-get install chromium`); without either the module is skipped.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
from sqlalchemy import Engine, text

from billing.accounts.users import create_account
from billing.core.formatting import brl, format_cpf
from billing.core.i18n import translations
from billing.imports.service import import_file
from billing.notices.planning import today_in
from tests.support.actors import ADMIN
from tests.support.browser_support import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    Screenshots,
    metric,
    playwright_and_chromium,
    registered_pages,
    running_app,
    wait_for_script,
)
from tests.support.debtor_files import VALID_CPFS

VALID_CPF_FORMATTED = format_cpf(VALID_CPFS[0])

sync_api = playwright_and_chromium()
expect = sync_api.expect
expect.set_options(timeout=30_000)  # a rerun on a busy two-core machine, as WAIT_MS

pytestmark = pytest.mark.browser

UPLOAD, OVERVIEW, CHARGES = "pages/1_Upload.py", "pages/0_Overview.py", "pages/3_Charges.py"
WAIT_MS = 30_000
PASSWORD = (
    "uma senha bem comprida"  # one rerun on a busy two-core machine; a passing run takes far less
)


def debtor_file(today: date) -> tuple[bytes, dict[str, object]]:
    """Five charges (three already late) and one row the validation rejects."""
    late, later = today - timedelta(days=40), today + timedelta(days=20)
    rows = [
        ("Maria da Conceição", VALID_CPFS[0], "maria@example.com", "1500.00", late, "e2e-1"),
        ("João Batista", VALID_CPFS[1], "joao@example.com", "250.50", late, "e2e-2"),
        ("Antônio Carlos", VALID_CPFS[2], "antonio@example.com", "99.90", late, "e2e-3"),
        ("Luíza Fernandes", VALID_CPFS[3], "luiza@example.com", "1200.00", later, "e2e-4"),
        ("Pedro Álvares", VALID_CPFS[4], "pedro@example.com", "300.00", later, "e2e-5"),
        ("Sem Documento", "123", "not-an-email", "-5", "2024-13-01", "e2e-bad"),
    ]
    lines = ["name,governmentId,email,debtAmount,debtDueDate,debtId"]
    lines += [",".join(str(value) for value in row) for row in rows]
    outstanding = sum(Decimal(row[3]) for row in rows[:5])
    expected = {
        "rows": "6",
        "valid": "5",
        "outstanding": brl(outstanding),
        "overdue": brl(Decimal("1500.00") + Decimal("250.50") + Decimal("99.90")),
        "overdue_count": "3",
    }
    return ("\n".join(lines) + "\n").encode("utf-8"), expected


_PORTUGUESE = translations("pt_BR")


def pt(message: str, plural: str | None = None, count: int = 1) -> str:
    """What the interface says in Portuguese for an English source string (the catalog)."""
    return _PORTUGUESE.ngettext(message, plural, count) if plural else _PORTUGUESE.gettext(message)


DRAG = pt("Drag a CSV file here to see a preview before anything is imported.")


@pytest.fixture()
def browser_page():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context(
            viewport={"width": 1400, "height": 1000}, accept_downloads=True, locale="pt-BR"
        )
        outside: list[str] = []
        context.on("request", lambda request: outside.extend(hosts_outside([request.url])))
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        try:
            yield page
        finally:
            context.close()
            browser.close()
        # Everything the dashboard needs (icons, fonts) comes from the dashboard itself: a
        # browser on the fund's network may reach nothing else.
        assert outside == [], f"the page asked hosts other than the dashboard's: {outside}"


def hosts_outside(urls: list[str]) -> list[str]:
    """The URLs among `urls` that go to a host other than the dashboard's own."""
    return [
        url
        for url in urls
        if urlsplit(url).scheme in ("http", "https", "ws", "wss")
        and urlsplit(url).hostname not in ("127.0.0.1", "localhost")
    ]


def test_operator_journey(
    no_accounts: Engine, app_env: dict[str, str], browser_page, subtests: pytest.Subtests
) -> None:
    db, page, shots = no_accounts, browser_page, Screenshots("operator_journey")
    pages = registered_pages()
    assert UPLOAD in pages, "the Upload page is the way in; app.py must register it"
    data, expected = debtor_file(today_in())

    # In Portuguese, the operators' language, at an ordinary laptop's width.
    app_env = {**app_env, "LANGUAGE": "pt_BR"}
    page.set_viewport_size({"width": 1280, "height": 900})
    with running_app(app_env, log_file=ARTIFACTS / "streamlit.log") as app:

        def open_page(script: str) -> None:
            page.goto(f"{app.url}/{pages[script]}")
            wait_for_script(page)

        with (
            subtests.test("a new install asks for its first administrator, once"),
            shots.on_failure(page, "first-admin-failed"),
        ):
            open_page(UPLOAD)  # a link straight to a page, first thing after the start
            expect(page.get_by_text(pt("Create the first administrator"))).to_be_visible()
            expect(page.get_by_test_id("stSidebarNav")).to_have_count(0)
            expect(page.get_by_text(DRAG)).to_have_count(0)
            shots.take(page, "first-admin")
            page.get_by_role("textbox", name=pt("E-mail")).fill("chefe@fundo.com.br")
            page.get_by_label(pt("Password (at least {count} characters)").format(count=12)).fill(
                PASSWORD
            )
            page.get_by_label(pt("The password again")).fill(PASSWORD)
            page.get_by_role("button", name=pt("Create the administrator")).click()
            expect(page.get_by_text(DRAG)).to_be_visible()
            signed_in = pt("Signed in as {name} ({role})")
            expect(
                page.get_by_text(signed_in.format(name="chefe@fundo.com.br", role=pt("admin")))
            ).to_be_visible()

        with (
            subtests.test("upload a file, preview it, import it"),
            shots.on_failure(page, "upload-failed"),
        ):
            expect(page.get_by_text(DRAG)).to_be_visible()
            # The app's own navigation, not Streamlit's listing of every file in pages/.
            navigation = page.get_by_test_id("stSidebarNav")
            expect(navigation).to_contain_text(pt("Collections"))
            expect(navigation).not_to_contain_text("shared")
            # Streamlit's own words on the uploader ("Upload", "300MB per file") replaced.
            words = page.get_by_test_id("stFileUploaderDropzone").evaluate(
                """zone => [
                    zone.querySelector('button [data-testid=stMarkdownContainer] p'),
                    zone.querySelector('[data-testid=stFileUploaderDropzoneInstructions] span'),
                ].map(node => getComputedStyle(node, '::after').content)"""
            )
            assert words == [
                f'"{pt("Choose a file")}"',
                f'"{pt("Up to {size} MB per file").format(size=250)} · CSV, TXT"',
            ]
            shots.take(page, "upload-empty")

            page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(
                files=[{"name": "debtors.csv", "mimeType": "text/csv", "buffer": data}]
            )
            expect(page.get_by_text(pt("First rows as read"))).to_be_visible()
            expect(metric(page, pt("Rows"))).to_have_text(expected["rows"])
            expect(metric(page, pt("Valid"))).to_have_text(expected["valid"])
            expect(page.get_by_text(pt("Rows that will be rejected"))).to_be_visible()
            wait_for_script(page)
            shots.take(page, "upload-preview")

            page.get_by_role("button", name=pt("Import"), exact=True).click()
            imported = pt("{count} charge", "{count} charges", 5).format(count=5)
            expect(page.get_by_text(re.compile(re.escape(imported)))).to_be_visible()
            expect(metric(page, pt("Imported"))).to_have_text("5")
            wait_for_script(page)
            shots.take(page, "upload-imported")

        with subtests.test("the overview shows the KPIs"):
            if OVERVIEW not in pages:
                pytest.skip(f"{OVERVIEW} is not registered in app.py yet")
            with shots.on_failure(page, "overview-failed"):
                open_page(OVERVIEW)
                expect(metric(page, pt("Outstanding"))).to_have_text(expected["outstanding"])
                expect(metric(page, pt("Overdue"))).to_have_text(expected["overdue"])
                expect(metric(page, pt("Overdue charges"))).to_have_text(expected["overdue_count"])
                expect(metric(page, pt("Received this month"))).to_have_text("R$ 0,00")
                expect(metric(page, pt("Issued"))).to_have_text("5")
                charts = page.get_by_test_id("stPlotlyChart")
                expect(charts.first).to_be_visible()
                expect(charts.first.locator(".main-svg").first).to_be_visible()  # drawn
                shots.take(page, "overview")

        with subtests.test("find a charge by name, open it, download its boleto"):
            if CHARGES not in pages:
                pytest.skip(f"{CHARGES} is not registered in app.py yet")
            with shots.on_failure(page, "charges-failed"):
                open_page(CHARGES)
                expect(metric(page, pt("Charges"))).to_have_text("5")
                search = page.get_by_role("textbox", name=pt("Search"), exact=True)
                search.fill("conceicao")  # no accent: the search folds them
                search.press("Enter")
                expect(metric(page, pt("Charges"))).to_have_text("1")
                wait_for_script(page)
                shots.take(page, "charges-filtered")

                # Opened by its debtId, as an operator does with a reference at hand: the
                # grid is a canvas, whose rows have no role or text to find them by.
                charge_id = charge_id_of(db, "e2e-1")
                reference = page.get_by_role(
                    "textbox", name=pt("Open a charge by its debtId or number"), exact=True
                )
                reference.fill("e2e-1")
                # The form's own button: every selectbox also has an "Open" button.
                open_form = page.get_by_test_id("stForm").filter(has=reference)
                open_form.get_by_role("button", name=pt("Open"), exact=True).click()
                expect_charge(page, charge_id=charge_id, says=pt, **LATE_CHARGE)
                # The open charge is in the link, to share it.
                expect(page).to_have_url(re.compile(rf"[?&]charge={charge_id}(&|$)"))
                wait_for_script(page)
                shots.take(page, "charge-opened")

            with shots.on_failure(page, "charge-link-failed"):
                page.goto(f"{app.url}/{pages[CHARGES]}?charge={charge_id}")  # a shared link
                wait_for_script(page)
                expect_charge(page, charge_id=charge_id, says=pt, **LATE_CHARGE)
                shots.take(page, "charge-from-link")

                with page.expect_download() as download_info:
                    page.get_by_role("button", name=pt("Download the boleto (PDF)")).click()
                download = download_info.value
                pdf = ARTIFACTS / "boleto-e2e-1.pdf"
                download.save_as(pdf)
                assert download.suggested_filename == "boleto-e2e-1.pdf"
                assert pdf.read_bytes().startswith(b"%PDF")


def charge_id_of(db: Engine, debt_id: str) -> int:
    """The number the app gave the charge `debt_id` (it shows in the page and the link)."""
    with db.connect() as conn:
        return conn.execute(
            text("SELECT id FROM charges WHERE debt_id = :debt_id"), {"debt_id": debt_id}
        ).scalar_one()


LATE_CHARGE = {"debt_id": "e2e-1", "amount": "R$ 1.500,00", "status": "Overdue"}


def expect_charge(
    page,
    *,
    charge_id: int,
    debt_id: str,
    amount: str,
    status: str,
    says: Callable[..., str] = lambda message, *_: message,
) -> None:
    """The Charges page shows that charge open, with its amount in pt-BR and its status
    (`says`: the interface's language, English unless given)."""
    heading = says("Charge #{id}").format(id=charge_id)
    expect(page.get_by_role("heading", name=heading)).to_be_visible()
    expect(page.get_by_test_id("stText").filter(has_text=f"debtId: {debt_id}")).to_be_visible()
    expect(metric(page, says("Amount"))).to_have_text(amount)
    expect(metric(page, says("Status"))).to_have_text(says(status))


def close_charge_panel(page) -> None:
    """Close the open charge's panel (a dialog: the page behind it takes no click)."""
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_have_count(0)
    wait_for_script(page)


def sign_in(
    page,
    url: str,
    email: str,
    password: str,
    says: Callable[..., str] = lambda message, *_: message,
) -> None:
    """Sign in on the page at `url` (`says`: the interface's language, English unless
    given)."""
    page.goto(url)
    wait_for_script(page)
    page.get_by_role("textbox", name=says("E-mail")).fill(email)
    page.get_by_label(says("Password"), exact=True).fill(password)
    page.get_by_role("button", name=says("Sign in")).click()
    # Signed in, or a refusal under the form: either way the rerun is over.
    signed_in = says("Signed in as {name} ({role})").split("{name}")[0].strip()
    expect(
        page.get_by_text(signed_in).or_(page.get_by_test_id("stAlertContentError"))
    ).to_be_visible(timeout=WAIT_MS)
    wait_for_script(page)


def test_sign_in_roles_reload_lockout_and_sign_out(
    no_accounts: Engine, app_env: dict[str, str], browser_page
) -> None:
    page, shots = browser_page, Screenshots("sign_in")
    pages = registered_pages()
    data, _ = debtor_file(today_in())
    for email, role in (("ana@fundo.com.br", "operator"), ("vera@fundo.com.br", "viewer")):
        create_account(no_accounts, actor=ADMIN, email=email, role=role, password=PASSWORD)
    import_file(
        engine=no_accounts, actor=ADMIN, data=data, file_name="d.csv", lenient_documents=False
    )
    charge_id = charge_id_of(no_accounts, "e2e-1")

    with running_app(app_env, log_file=ARTIFACTS / "streamlit-sign-in.log") as app:
        charges = f"{app.url}/{pages[CHARGES]}"
        with shots.on_failure(page, "anonymous-failed"):
            for link in (app.url, f"{charges}?status=overdue", f"{charges}?charge={charge_id}"):
                page.goto(link)
                wait_for_script(page)
                expect(page.get_by_role("button", name="Sign in")).to_be_visible()
                expect(page.get_by_test_id("stMetric")).to_have_count(0)
                expect(page.get_by_test_id("stDataFrame")).to_have_count(0)
                expect(page.get_by_test_id("stSidebarNav")).to_have_count(0)
                expect(page.get_by_text("Maria da Concei")).to_have_count(0)
            expect(page.get_by_text("Create the first administrator")).to_have_count(0)
            shots.take(page, "sign-in")

        with shots.on_failure(page, "viewer-failed"):
            sign_in(page, f"{charges}?charge={charge_id}", "vera@fundo.com.br", PASSWORD)
            expect_charge(page, charge_id=charge_id, **LATE_CHARGE)  # the deep link, kept
            expect(page.get_by_test_id("stText").first).to_contain_text("***.")
            for hidden in ("Record the payment", "Cancel the charge", "Show the whole CPF/CNPJ"):
                expect(page.get_by_role("button", name=hidden)).to_have_count(0)
            expect(page.get_by_role("button", name=re.compile("Download"))).to_have_count(0)
            expect(page.get_by_test_id("stSidebarNav")).not_to_contain_text("Upload")
            shots.take(page, "viewer-charge")
            close_charge_panel(page)
            page.get_by_role("button", name="Sign out").click()
            expect(page.get_by_role("button", name="Sign in")).to_be_visible()

        with shots.on_failure(page, "operator-failed"):
            sign_in(page, f"{charges}?charge={charge_id}", "ana@fundo.com.br", PASSWORD)
            expect_charge(page, charge_id=charge_id, **LATE_CHARGE)
            page.reload()  # a reload keeps the session: no password asked again
            wait_for_script(page)
            expect_charge(page, charge_id=charge_id, **LATE_CHARGE)
            second_tab = page.context.new_page()  # a new tab too
            second_tab.goto(app.url)
            wait_for_script(second_tab)
            expect(second_tab.get_by_text("Signed in as ana@fundo.com.br")).to_be_visible()
            page.get_by_role("button", name="Show the whole CPF/CNPJ").click()
            expect(page.get_by_test_id("stText").first).to_contain_text(VALID_CPF_FORMATTED)
            shots.take(page, "operator-revealed")
            close_charge_panel(page)
            page.get_by_role("button", name="Sign out").click()
            expect(page.get_by_role("button", name="Sign in")).to_be_visible()
            second_tab.reload()  # signed out everywhere the session was used
            wait_for_script(second_tab)
            expect(second_tab.get_by_role("button", name="Sign in")).to_be_visible()
            second_tab.close()

        with shots.on_failure(page, "lockout-failed"):
            for attempt in range(5):
                sign_in(page, app.url, "ana@fundo.com.br", f"wrong password {attempt}")
            expect(page.get_by_text("locked after 5 wrong passwords")).to_be_visible()
            sign_in(page, app.url, "ana@fundo.com.br", PASSWORD)
            expect(page.get_by_text("locked after 5 wrong passwords")).to_be_visible()
            shots.take(page, "locked")


def test_a_file_from_another_system_is_mapped_and_imported(
    no_accounts: Engine, app_env: dict[str, str], browser_page
) -> None:
    """In Portuguese at 1280 px: a file whose columns have other names is shown with each
    field's column guessed, and imports with that mapping."""
    db, page, shots = no_accounts, browser_page, Screenshots("column_mapping")
    pages = registered_pages()
    create_account(db, actor=ADMIN, email="ana@fundo.com.br", role="operator", password=PASSWORD)
    erp_file = (
        "Cliente;Documento;Correio;Valor Original;Vencimento;Contrato\n"
        f"Maria da Conceição;{VALID_CPFS[0]};maria@example.com;1.500,00;31/12/2030;C-1\n"
        f"João Batista;{VALID_CPFS[1]};joao@example.com;250,50;15/01/2031;C-2\n"
    ).encode()
    page.set_viewport_size({"width": 1280, "height": 900})
    with running_app(
        {**app_env, "LANGUAGE": "pt_BR"}, log_file=ARTIFACTS / "streamlit-mapping.log"
    ) as app:
        sign_in(page, f"{app.url}/{pages[UPLOAD]}", "ana@fundo.com.br", PASSWORD, says=pt)
        expect(page.get_by_text(DRAG)).to_be_visible()
        with shots.on_failure(page, "mapping-failed"):
            page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(
                files=[{"name": "erp.csv", "mimeType": "text/csv", "buffer": erp_file}]
            )
            expect(page.get_by_text(pt("Which column is which"))).to_be_visible()
            guesses = {
                "name": "Cliente",
                "governmentId": "Documento",
                "email": "Correio",
                "debtAmount": "Valor Original",
                "debtDueDate": "Vencimento",
                "debtId": "Contrato",
            }
            for field, column in guesses.items():
                choice = page.get_by_role("combobox", name=field, exact=True)
                expect(choice).to_have_value(column)
            wait_for_script(page)
            shots.take(page, "mapping-guessed")
            page.get_by_role("button", name=pt("Import"), exact=True).click()
            expect(metric(page, pt("Imported"))).to_have_text("2")
            shots.take(page, "mapping-imported")
    with db.connect() as conn:
        rows = conn.execute(
            text("SELECT debt_id, amount::text, due_date::text FROM charges ORDER BY debt_id")
        ).all()
    assert [tuple(row) for row in rows] == [
        ("C-1", "1500.00", "2030-12-31"),
        ("C-2", "250.50", "2031-01-15"),
    ]


HEADER_HEIGHT = 35  # the grid's header row, in CSS pixels


# Where the "Valor" header is drawn at 1280 px (the grid is a canvas: its headers have no
# element to find them by; the columns' widths are the page's column_config).
AMOUNT_HEADER_X = 330


def click_amount_header(page, grid) -> None:
    """One click on the Valor header (a sort by amount, smallest first, if it sorted)."""
    box = grid.get_by_test_id("stDataFrameResizable").bounding_box()
    page.mouse.click(box["x"] + AMOUNT_HEADER_X, box["y"] + HEADER_HEIGHT / 2)
    page.mouse.move(1, 1)
    wait_for_script(page)


def test_headers_of_a_page_of_charges_do_not_sort(
    no_accounts: Engine, app_env: dict[str, str], browser_page
) -> None:
    """Streamlit's grid sorts by a header click in the browser, over the 50 rows it was
    given: on the Charges page that would order one page and look like the filtered set's
    order. Its headers take no click (pages/_tables.one_page_of_many); the Order choice
    sorts through the query. After a click on the amount's header, the first row is still
    the first charge of the query's order."""
    db, page, shots = no_accounts, browser_page, Screenshots("header_sort")
    create_account(db, actor=ADMIN, email="ana@fundo.com.br", role="operator", password=PASSWORD)
    data, _ = debtor_file(today_in())
    import_file(engine=db, actor=ADMIN, data=data, file_name="d.csv", lenient_documents=False)
    # The query's order (due date, oldest first; then id) puts e2e-1 (R$ 1.500,00) first;
    # a sort by amount or by name would not.
    first = charge_id_of(db, "e2e-1")
    pages = registered_pages()
    page.set_viewport_size({"width": 1280, "height": 900})
    with (
        running_app(
            {**app_env, "LANGUAGE": "pt_BR"}, log_file=ARTIFACTS / "streamlit-header-sort.log"
        ) as app,
        shots.on_failure(page, "charges-failed"),
    ):
        sign_in(page, f"{app.url}/{pages[CHARGES]}", "ana@fundo.com.br", PASSWORD, says=pt)
        grid = page.get_by_test_id("stDataFrame")
        expect(grid).to_be_visible()
        click_amount_header(page, grid)
        shots.take(page, "charges-headers-clicked")
        # The first row drawn is still the query's first charge (R$ 1.500,00; a sort
        # by amount would put e2e-3's R$ 99,90 first).
        box = grid.get_by_test_id("stDataFrameResizable").bounding_box()
        page.mouse.click(box["x"] + 15, box["y"] + HEADER_HEIGHT * 1.5)
        heading = pt("Charge #{id}").format(id=first)
        expect(page.get_by_role("heading", name=heading)).to_be_visible()
