"""Accounts (admins): who may sign in, with which role; add, disable, reset, change role."""

import pandas as pd
import streamlit as st

from billing.accounts.users import (
    MIN_PASSWORD_LENGTH,
    create_account,
    disable_account,
    list_accounts,
    reset_password,
    set_role,
)
from billing.core.i18n import _
from pages._session import current_actor
from pages._shared import engine, operator_errors, read_engine, role_name, wrote
from pages._tables import MISSING, in_local_time, time_column

ROLES = ["viewer", "operator", "admin"]
actor = current_actor()
st.title(_("Accounts"))

accounts = []
with operator_errors():
    accounts = list_accounts(read_engine(), actor=actor)
if not accounts:
    st.stop()  # the refusal is on the screen

last_sign_in, locked_until = _("Last sign-in"), _("Locked until")
st.dataframe(
    in_local_time(
        pd.DataFrame(
            {
                _("E-mail"): [a.email for a in accounts],
                _("Role"): [role_name(a.role) for a in accounts],
                _("Status"): [_("disabled") if a.disabled else _("active") for a in accounts],
                _("Signs in with"): [
                    _("password") if a.has_password else _("company account") for a in accounts
                ],
                last_sign_in: [a.last_sign_in_at for a in accounts],
                locked_until: [a.locked_until for a in accounts],
                _("Created by"): [a.created_by for a in accounts],
            }
        ),
        last_sign_in,
        locked_until,
    ),
    hide_index=True,
    placeholder=MISSING,
    column_config={column: time_column(column) for column in (last_sign_in, locked_until)},
)
if done := st.session_state.pop("accounts_flash", None):
    st.success(done)


def _done(message: str) -> None:
    wrote()  # the rerun lists the accounts from the primary: the change shows at once
    st.session_state["accounts_flash"] = message
    st.rerun()


add_tab, change_tab = st.tabs([_("Add an account"), _("Change an account")])
with add_tab, st.form("add_account", clear_on_submit=True):
    email = st.text_input(_("E-mail"))
    role = st.selectbox(_("Role"), ROLES, index=1, format_func=role_name)
    password = st.text_input(
        _("Password (at least {count} characters; empty: company account only)").format(
            count=MIN_PASSWORD_LENGTH
        ),
        type="password",
        autocomplete="new-password",
    )
    if st.form_submit_button(_("Add the account"), type="primary"):
        with operator_errors():
            added = create_account(
                engine(), actor=actor, email=email, role=role, password=password or None
            )
            _done(
                _("Added {email} as {role}.").format(email=added.email, role=role_name(added.role))
            )

with change_tab:
    chosen = st.selectbox(_("Account"), [a.email for a in accounts])
    current = next(a for a in accounts if a.email == chosen)
    role_column, password_column = st.columns(2)
    with role_column.form("set_role"):
        new_role = st.selectbox(
            _("Role"), ROLES, index=ROLES.index(current.role.value), format_func=role_name
        )
        if st.form_submit_button(_("Change the role")):
            with operator_errors():
                changed = set_role(engine(), actor=actor, email=chosen, role=new_role)
                _done(
                    _("{email} is now {role}.").format(
                        email=changed.email, role=role_name(changed.role)
                    )
                )
    with password_column.form("reset_password", clear_on_submit=True):
        new_password = st.text_input(
            _("New password"), type="password", autocomplete="new-password"
        )
        if st.form_submit_button(_("Reset the password")):
            with operator_errors():
                reset = reset_password(engine(), actor=actor, email=chosen, password=new_password)
                _done(
                    _("New password set for {email}; their sessions were ended.").format(
                        email=reset.email
                    )
                )
    if not current.disabled and st.button(_("Disable this account"), key="disable_account"):
        with operator_errors():
            disabled = disable_account(engine(), actor=actor, email=chosen)
            _done(_("{email} is disabled; their sessions were ended.").format(email=disabled.email))
