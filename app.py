"""Billing dashboard: page set-up and navigation, nothing else."""

import streamlit as st

st.set_page_config(page_title="Cobrança", page_icon=":material/receipt_long:", layout="wide")

navigation = st.navigation(
    {
        "Collections": [
            st.Page(
                "pages/0_Overview.py", title="Overview", icon=":material/dashboard:", default=True
            ),
            st.Page("pages/3_Charges.py", title="Charges", icon=":material/receipt_long:"),
            st.Page("pages/5_Debtors.py", title="Debtors", icon=":material/person:"),
        ],
        "Files": [
            st.Page("pages/1_Upload.py", title="Upload", icon=":material/upload_file:"),
            st.Page("pages/2_Imports.py", title="Imports", icon=":material/history:"),
        ],
        "E-mail": [
            st.Page("pages/4_Notifications.py", title="Notifications", icon=":material/mail:"),
        ],
    }
)
navigation.run()
