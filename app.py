"""Billing dashboard: page set-up, sign-in and navigation, nothing else.

Nothing below the sign-in check runs for a visitor who has not signed in: no page, no
count, no deep link. Each role sees the pages it may use; the domain checks the role
again at every action (billing.accounts.access).
"""

from pathlib import Path

import streamlit as st

from billing.accounts.access import Actor, Permission
from billing.core.i18n import _
from pages._session import language_switch, sign_in_screen, sign_out_button, signed_in_actor
from pages._shared import database_trouble_shown

FAVICON = Path(__file__).resolve().parent / "assets" / "favicon.png"

# The page icon is a file of ours: a :material: icon would be fetched from a public font
# server, which a browser on the fund's network may not reach.
st.set_page_config(page_title="Cobrança", page_icon=str(FAVICON), layout="wide")


def pages_for(actor: Actor | None) -> dict[str, list[st.Page]]:
    """The pages a role may open; for a visitor every page, hidden, so that a link to one
    (`/Charges?charge=12`) is kept through the sign-in and opens it afterwards. Titles
    in the reader's language; the addresses (`/Charges`) come from the file names."""
    files = _("Files")
    sections = {
        _("Collections"): [
            st.Page(
                "pages/0_Overview.py",
                title=_("Overview"),
                icon=":material/dashboard:",
                default=True,
            ),
            st.Page("pages/3_Charges.py", title=_("Charges"), icon=":material/receipt_long:"),
            st.Page("pages/5_Debtors.py", title=_("Debtors"), icon=":material/person:"),
        ],
        files: [
            st.Page("pages/2_Imports.py", title=_("Imports"), icon=":material/history:"),
        ],
        _("E-mail"): [
            st.Page("pages/4_Notifications.py", title=_("Notifications"), icon=":material/mail:"),
        ],
    }
    if actor is None or actor.can(Permission.IMPORT):
        sections[files].insert(
            0, st.Page("pages/1_Upload.py", title=_("Upload"), icon=":material/upload_file:")
        )
    if actor is None or actor.can(Permission.BANK_FILES):
        sections[files].append(
            st.Page(
                "pages/8_Bank_files.py", title=_("Bank files"), icon=":material/account_balance:"
            )
        )
    if actor is None or actor.can(Permission.MANAGE_ACCOUNTS):
        sections[_("Administration")] = [
            st.Page("pages/6_Accounts.py", title=_("Accounts"), icon=":material/group:"),
            st.Page("pages/7_Audit.py", title=_("Audit"), icon=":material/policy:"),
        ]
    return sections


with database_trouble_shown():  # a database down or too slow: a sentence, and a retry
    actor = signed_in_actor()
    navigation = st.navigation(pages_for(actor), position="sidebar" if actor else "hidden")
    if actor is None:
        sign_in_screen()  # and nothing else: the script stops there
    language_switch(actor)
    sign_out_button(actor)
    navigation.run()
