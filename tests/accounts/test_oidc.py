"""Signing in with the company's identity provider (AUTH_MODE=oidc), in a real Chromium.

The app is app.py as deployed, started with `streamlit run`; the provider is a real
OpenID Connect server (oidc-provider-mock, tests/support/oidc_support.py) on a port of its own;
Streamlit's st.login talks to it with Authlib. Each visitor has a browser context of
their own, so no cookie passes from one to the next. Screenshots of every step, and of
the screen when a step fails, go to test-artifacts/browser/oidc_sign_in/.

Needs the `playwright` package and Debian's chromium, like tests/pages/test_browser.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from billing.accounts.users import create_account
from billing.imports.service import import_file
from tests.support.actors import ADMIN
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
from tests.support.debtor_files import debtor_csv, sample_rows
from tests.support.network import free_port
from tests.support.oidc_support import IdentityProvider, identity_provider, oidc_app_env

sync_api = playwright_and_chromium()
expect = sync_api.expect

pytestmark = [
    pytest.mark.browser,
    # Raised by the provider at every token it signs: oidc-provider-mock 0.3.4, the last
    # release for Python 3.11, uses an Authlib API that Authlib 1.9 deprecates.
    pytest.mark.filterwarnings("ignore:get_jwt_config:DeprecationWarning"),
]

WAIT_MS = 30_000  # a page after a redirect, on a busy machine; expect() waits 5 s alone
OPERATOR = "ana.operadora@fundo.example"
STRANGER = "visitante@elsewhere.example"
# On the operators' list too, but an account with the address names the role: viewer.
ACCOUNT_HOLDER = "bruno.leitor@fundo.example"
SIGN_IN = re.compile(r"sign in with", re.IGNORECASE)
SIGN_OUT = re.compile(r"sign out", re.IGNORECASE)


@pytest.fixture()
def provider() -> Iterator[IdentityProvider]:
    with identity_provider() as running:
        yield running


@pytest.fixture()
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


def new_visitor(browser):
    """A page in a browser context of its own: no cookie from any other visitor."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="pt-BR")
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    return page


def expect_sign_in_screen_only(page) -> None:
    """The sign-in button, and nothing of the dashboard: no navigation, figure or name."""
    expect(page.get_by_role("button", name=SIGN_IN)).to_be_visible(timeout=WAIT_MS)
    wait_for_script(page)
    expect(page.get_by_test_id("stSidebarNav")).to_have_count(0)
    expect(page.get_by_test_id("stMetric")).to_have_count(0)
    expect(page.get_by_test_id("stDataFrame")).to_have_count(0)
    expect(page.get_by_text("Debtor 0")).to_have_count(0)


def sign_in_at_provider(page, email: str) -> None:
    """Click the app's sign-in button and authorize as `email` on the provider's page."""
    page.get_by_role("button", name=SIGN_IN).click()
    page.get_by_placeholder("sub").fill(email)  # the identity's subject, and its e-mail
    page.get_by_role("button", name="Authorize").click()


def sign_out(page) -> None:
    """Click the app's sign-out button and confirm on the provider's end-session page.

    Streamlit sends the browser to the provider's end_session_endpoint when its metadata
    has one (this provider, Entra ID, Keycloak; not Google), which then sends it back.
    """
    page.get_by_role("button", name=SIGN_OUT).click()
    expect(
        page,
        "st.logout() did not send the browser to the provider: a script that reruns (or "
        "runs on) right after st.logout() can drop that redirect, and the identity cookie "
        "then outlives the 'Signed out' screen",
    ).to_have_url(re.compile(r"/oauth2/end_session\?"), timeout=WAIT_MS)
    page.get_by_role("button", name="End session").click()


def test_sign_in_with_the_company_account(
    no_accounts: Engine,
    app_env: dict[str, str],
    provider: IdentityProvider,
    browser,
    tmp_path: Path,
    subtests: pytest.Subtests,
) -> None:
    shots = Screenshots("oidc_sign_in")
    import_file(  # data a stranger must not see
        engine=no_accounts,
        actor=ADMIN,
        data=debtor_csv(sample_rows(3)),
        file_name="debtors.csv",
        lenient_documents=False,
    )
    create_account(no_accounts, actor=ADMIN, email=ACCOUNT_HOLDER, role="viewer", password=None)

    port = free_port()
    env = {
        **app_env,
        **oidc_app_env(
            provider,
            app_port=port,
            folder=tmp_path / "streamlit-secrets",
            operators=f"{OPERATOR}, {ACCOUNT_HOLDER}",
        ),
    }
    with running_app(env, log_file=ARTIFACTS / "streamlit-oidc.log", port=port) as app:
        with subtests.test("an unknown visitor sees only the sign-in screen"):
            page = new_visitor(browser)
            with shots.on_failure(page, "visitor-failed"):
                page.goto(f"{app.url}/")
                expect_sign_in_screen_only(page)
                shots.take(page, "visitor-home")
                page.goto(f"{app.url}/Charges?status=overdue")  # a link shared with them
                expect_sign_in_screen_only(page)
                shots.take(page, "visitor-charges-link")
            page.context.close()

        operator = new_visitor(browser)
        with (
            subtests.test("an operator signs in and lands on the Overview"),
            shots.on_failure(operator, "operator-failed"),
        ):
            operator.goto(f"{app.url}/")
            sign_in_at_provider(operator, OPERATOR)
            expect(metric(operator, "Outstanding")).to_be_visible(timeout=WAIT_MS)
            expect(operator).to_have_url(re.compile(rf"^{re.escape(app.url)}/?$"))
            sidebar = operator.get_by_test_id("stSidebar")
            expect(sidebar).to_contain_text(OPERATOR)
            expect(sidebar).to_contain_text(re.compile(r"\boperator\b", re.IGNORECASE))
            expect(operator.get_by_test_id("stSidebarNav")).to_contain_text("Collections")
            wait_for_script(operator)
            shots.take(operator, "operator-overview")

        with (
            subtests.test("signing out returns to the sign-in screen"),
            shots.on_failure(operator, "sign-out-failed"),
        ):
            sign_out(operator)
            expect_sign_in_screen_only(operator)
            shots.take(operator, "signed-out")
            operator.goto(f"{app.url}/")  # the identity cookie is gone, not just hidden
            expect_sign_in_screen_only(operator)
        operator.context.close()

        with subtests.test("an identity with no role is refused with a sentence"):
            page = new_visitor(browser)
            with shots.on_failure(page, "stranger-failed"):
                page.goto(f"{app.url}/")
                sign_in_at_provider(page, STRANGER)
                refusal = re.compile(rf"{re.escape(STRANGER)}.*no access")
                expect(page.get_by_text(refusal)).to_be_visible(timeout=WAIT_MS)
                wait_for_script(page)
                expect(page.get_by_test_id("stSidebarNav")).to_have_count(0)
                expect(page.get_by_test_id("stMetric")).to_have_count(0)
                shots.take(page, "stranger-refused")
                page.goto(f"{app.url}/Charges?status=overdue")
                expect(page.get_by_text(re.compile("no access"))).to_be_visible(timeout=WAIT_MS)
                expect(page.get_by_test_id("stMetric")).to_have_count(0)
                # Refused, the browser still holds the provider's identity: the way out
                # is to sign out, then in with another account.
                sign_out(page)
                expect_sign_in_screen_only(page)
            page.context.close()

        with subtests.test("an account with the identity's address names its role"):
            page = new_visitor(browser)
            with shots.on_failure(page, "account-holder-failed"):
                page.goto(f"{app.url}/")
                sign_in_at_provider(page, ACCOUNT_HOLDER)
                expect(metric(page, "Outstanding")).to_be_visible(timeout=WAIT_MS)
                sidebar = page.get_by_test_id("stSidebar")
                expect(sidebar).to_contain_text(ACCOUNT_HOLDER)
                expect(sidebar).to_contain_text(re.compile(r"\bviewer\b", re.IGNORECASE))
                # The viewer's pages, not the list's operator's: no Upload.
                expect(page.get_by_test_id("stSidebarNav")).not_to_contain_text("Upload")
                wait_for_script(page)
                shots.take(page, "account-holder-overview")
            page.context.close()
