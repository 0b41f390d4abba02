"""Billing dashboard: page set-up and navigation, nothing else."""

import streamlit as st

st.set_page_config(page_title="Cobrança", page_icon="🧾", layout="wide")

navigation = st.navigation(
    {
        "Files": [
            st.Page("pages/1_Upload.py", title="Upload", icon="⬆️", default=True),
            st.Page("pages/2_Imports.py", title="Imports", icon="🗂️"),
        ],
    }
)
navigation.run()
