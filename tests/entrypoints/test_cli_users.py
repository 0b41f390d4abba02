"""`python -m billing users ...`: accounts from the command line, real processes."""

from __future__ import annotations

import getpass
import json
import subprocess
import sys

import pytest
from sqlalchemy import Engine, text

from billing.accounts import users as accounts

pytestmark = pytest.mark.slow  # each test runs `python -m billing` in a subprocess

PASSWORD = "a long enough password"


def users(
    args: list[str], env: dict[str, str], stdin: str = "", *, no_terminal: bool = False
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "billing", "users", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        start_new_session=no_terminal,
    )


def test_add_list_set_role_disable_and_reset(no_accounts: Engine, app_env) -> None:
    added = users(
        ["add", "Ana@Fund.com", "--role", "operator", "--password-stdin"], app_env, PASSWORD + "\n"
    )
    assert added.returncode == 0, added.stderr
    assert "added ana@fund.com (operator)" in added.stdout
    assert accounts.sign_in(no_accounts, email="ana@fund.com", password=PASSWORD)

    listed = users(["list", "--json"], app_env)
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    assert (row["email"], row["role"], row["status"]) == ("ana@fund.com", "operator", "active")
    assert row["lastSignIn"] is not None

    assert users(["set-role", "ana@fund.com", "viewer"], app_env).returncode == 0
    reset = users(
        ["reset-password", "ana@fund.com", "--password-stdin"], app_env, "another one!!\n"
    )
    assert reset.returncode == 0, reset.stderr
    assert accounts.sign_in(no_accounts, email="ana@fund.com", password="another one!!").actor.role
    assert users(["disable", "ana@fund.com"], app_env).returncode == 0
    assert "disabled" in users(["list"], app_env).stdout

    with no_accounts.connect() as conn:
        trail = conn.execute(
            text(
                "SELECT actor, action FROM audit_events WHERE subject = 'ana@fund.com' "
                "AND action LIKE 'account.%' ORDER BY id DESC LIMIT 4"
            )
        ).all()
    assert {actor for actor, _ in trail} == {f"cli:{getpass.getuser()}"}
    assert [action for _, action in trail] == [
        "account.disable",
        "account.reset_password",
        "account.set_role",
        "account.create",
    ]


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (
            ["add", "ana@fund.com", "--role", "operator", "--password-stdin"],
            "short\n",
            "at least 12",
        ),
        (["add", "not-an-email", "--role", "operator", "--password-stdin"], PASSWORD, "e-mail"),
        (["disable", "nobody@fund.com"], "", "no account"),
        (["set-role", "nobody@fund.com", "admin"], "", "no account"),
    ],
)
def test_mistakes_get_one_sentence_and_exit_2(
    no_accounts: Engine, app_env, args: list[str], stdin: str, message: str
) -> None:
    done = users(args, app_env, stdin)
    assert done.returncode == 2
    assert message in done.stderr.lower()
    assert "Traceback" not in done.stderr
    assert PASSWORD not in done.stderr + done.stdout


def test_an_unknown_role_is_refused_by_the_parser(no_accounts: Engine, app_env) -> None:
    done = users(["add", "ana@fund.com", "--role", "boss", "--password-stdin"], app_env, PASSWORD)
    assert done.returncode == 2
    assert "invalid choice" in done.stderr


def test_without_the_flag_the_password_is_asked_twice(no_accounts: Engine, app_env) -> None:
    """No terminal here (a new session): getpass falls back to reading the two answers."""
    asked = users(
        ["add", "bea@fund.com", "--role", "viewer"],
        app_env,
        f"{PASSWORD}\nsomething else entirely\n",
        no_terminal=True,
    )
    assert asked.returncode == 2
    assert "differ" in asked.stderr
    assert accounts.needs_first_admin(no_accounts)

    asked = users(
        ["add", "bea@fund.com", "--role", "viewer"],
        app_env,
        f"{PASSWORD}\n{PASSWORD}\n",
        no_terminal=True,
    )
    assert asked.returncode == 0, asked.stderr
    assert accounts.sign_in(no_accounts, email="bea@fund.com", password=PASSWORD)
