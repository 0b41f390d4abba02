"""The Overview's headline figures are read whole at the laptop widths operators use
(1280 and 1440 px), in Portuguese, in a real Chromium against the running app.

Needs the `playwright` package and Debian's Chromium (see test_browser.py); skipped
without them. Screenshots go to test-artifacts/browser/overview_widths/.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine

from billing.accounts.users import create_account
from billing.imports.service import import_file
from billing.notices.planning import today_in
from tests.support.actors import ADMIN, OPERATOR
from tests.support.browser_support import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    Screenshots,
    metric,
    playwright_and_chromium,
    running_app,
    wait_for_script,
)
from tests.support.debtor_files import HEADER, VALID_CPFS

sync_api = playwright_and_chromium()
expect = sync_api.expect
expect.set_options(timeout=30_000)

pytestmark = pytest.mark.browser

EMAIL, PASSWORD = "chefe@fundo.com.br", "uma senha bem comprida"


def large_fund(db: Engine) -> None:
    """R$ 239 million owed, all of it late, and another R$ 100 million not yet due."""
    today = today_in()
    rows = [
        *(("late", "79783744.85", today - timedelta(days=40)) for _ in range(3)),
        *(("ahead", "50061234.50", today + timedelta(days=20)) for _ in range(2)),
    ]
    lines = [HEADER] + [
        f"Devedor {n},{VALID_CPFS[n % 5]},d{n}@example.com,{amount},{due},{kind}-{n}"
        for n, (kind, amount, due) in enumerate(rows)
    ]
    result = import_file(
        actor=OPERATOR,
        engine=db,
        data=("\n".join(lines) + "\n").encode(),
        file_name="grande.csv",
        lenient_documents=False,
    )
    assert result.status == "done", result.error


@pytest.mark.parametrize("width", [1280, 1440])
def test_headline_figures_are_whole_at_laptop_widths(
    no_accounts: Engine, app_env: dict[str, str], width: int
) -> None:
    large_fund(no_accounts)
    create_account(no_accounts, actor=ADMIN, email=EMAIL, role="admin", password=PASSWORD)
    env = {**app_env, "LANGUAGE": "pt_BR"}
    shots = Screenshots(f"overview_widths_{width}")
    log_file = ARTIFACTS / f"streamlit-overview-{width}.log"
    with running_app(env, log_file=log_file) as app, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": width, "height": 900}, locale="pt-BR")
            page.goto(app.url)
            wait_for_script(page)
            page.get_by_role("textbox", name="E-mail").fill(EMAIL)
            page.get_by_label("Senha", exact=True).fill(PASSWORD)
            page.get_by_role("button", name="Entrar").click()
            with shots.on_failure(page, "overview-failed"):
                expect(metric(page, "Em aberto")).to_have_text("R$ 339,47 mi")
                expect(metric(page, "Vencida")).to_have_text("R$ 239,35 mi")
                wait_for_script(page)
                shots.take(page, "overview")
                # Every figure drawn whole: none cut to "R$ 239,…" by its column.
                cut = page.eval_on_selector_all(
                    "[data-testid=stMetricValue] > div",
                    "values => values.filter(v => v.scrollWidth > v.clientWidth + 1)"
                    ".map(v => v.textContent)",
                )
                assert cut == []
        finally:
            browser.close()
