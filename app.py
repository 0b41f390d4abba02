"""Billing dashboard: page set-up, sign-in and navigation, nothing else.

Nothing below the sign-in check runs for a visitor who has not signed in: no page, no
count, no deep link. Each role sees the pages it may use; the domain checks the role
again at every action (billing.accounts.access).
"""

import streamlit as st

from billing.accounts.access import Actor, Permission
from pages._session import sign_in_screen, sign_out_button, signed_in_actor
from pages._shared import database_trouble_shown

st.set_page_config(page_title="Cobrança", page_icon=":material/receipt_long:", layout="wide")


def pages_for(actor: Actor | None) -> dict[str, list[st.Page]]:
    """The pages a role may open; for a visitor every page, hidden, so that a link to one
    (`/Charges?charge=12`) is kept through the sign-in and opens it afterwards."""
    sections = {
        "Collections": [
            st.Page(
                "pages/0_Overview.py", title="Overview", icon=":material/dashboard:", default=True
            ),
            st.Page("pages/3_Charges.py", title="Charges", icon=":material/receipt_long:"),
            st.Page("pages/5_Debtors.py", title="Debtors", icon=":material/person:"),
        ],
        "Files": [
            st.Page("pages/2_Imports.py", title="Imports", icon=":material/history:"),
        ],
        "E-mail": [
            st.Page("pages/4_Notifications.py", title="Notifications", icon=":material/mail:"),
        ],
    }
    if actor is None or actor.can(Permission.IMPORT):
        sections["Files"].insert(
            0, st.Page("pages/1_Upload.py", title="Upload", icon=":material/upload_file:")
        )
    if actor is None or actor.can(Permission.BANK_FILES):
        sections["Files"].append(
            st.Page("pages/8_Bank_files.py", title="Bank files", icon=":material/account_balance:")
        )
    if actor is None or actor.can(Permission.MANAGE_ACCOUNTS):
        sections["Administration"] = [
            st.Page("pages/6_Accounts.py", title="Accounts", icon=":material/group:"),
            st.Page("pages/7_Audit.py", title="Audit", icon=":material/policy:"),
        ]
    return sections


with database_trouble_shown():  # a database down or too slow: a sentence, and a retry
    actor = signed_in_actor()
    navigation = st.navigation(pages_for(actor), position="sidebar" if actor else "hidden")
    if actor is None:
        sign_in_screen()  # and nothing else: the script stops there
    sign_out_button(actor)
    navigation.run()
