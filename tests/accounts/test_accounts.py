"""Built-in accounts, sign-in, sessions and the audit trail, on the real database."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from billing.accounts import users as accounts
from billing.accounts.access import Forbidden, Role, cli_actor
from billing.accounts.audit import AuditFilter, audit_csv_file, audit_events
from billing.accounts.users import SignInRefused
from billing.core.errors import OperatorError
from billing.core.settings import Settings
from tests.support.actors import ADMIN, OPERATOR, VIEWER

PASSWORD = "correct horse battery"
TZ = "America/Sao_Paulo"


@pytest.fixture()
def accounts_db(no_accounts: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """No account yet; failures answered without the production delay."""
    db = no_accounts
    monkeypatch.setattr(accounts, "FAILURE_DELAY_SECONDS", 0.0)
    with db.connect() as conn:  # the trail is append-only: earlier tests' rows stay
        _since["id"] = conn.execute(text("SELECT coalesce(max(id), 0) FROM audit_events")).scalar()
    yield db


_since = {"id": 0}


def events(db: Engine, action: str, subject: str) -> list[dict]:
    with db.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT actor, action, subject, details FROM audit_events "
                "WHERE action = :action AND subject = :subject AND id > :since ORDER BY id"
            ),
            {"action": action, "subject": subject, "since": _since["id"]},
        ).mappings()
        return [dict(row) for row in rows]


def add(db: Engine, email: str, role: str = "operator", password: str | None = PASSWORD):
    return accounts.create_account(db, actor=ADMIN, email=email, role=role, password=password)


def test_the_first_administrator_is_created_once(accounts_db: Engine) -> None:
    assert accounts.needs_first_admin(accounts_db)
    admin = accounts.create_first_admin(accounts_db, email=" Boss@Fund.com ", password=PASSWORD)
    assert (admin.email, admin.role) == ("boss@fund.com", Role.ADMIN)
    assert not accounts.needs_first_admin(accounts_db)
    with pytest.raises(OperatorError, match="already exists"):
        accounts.create_first_admin(accounts_db, email="intruder@x.com", password=PASSWORD)
    [created] = events(accounts_db, "account.create", "boss@fund.com")
    assert created["details"]["first_admin"] is True


def test_passwords_are_hashed_with_argon2_and_never_stored(accounts_db: Engine) -> None:
    add(accounts_db, "ana@fund.com")
    with accounts_db.connect() as conn:
        stored = conn.execute(text("SELECT password_hash FROM accounts")).scalar_one()
        trail = conn.execute(text("SELECT details::text FROM audit_events")).scalars().all()
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    assert not any(PASSWORD in details for details in trail)


@pytest.mark.parametrize("password", ["", "short", "elevenchars"])
def test_a_password_needs_twelve_characters(accounts_db: Engine, password: str) -> None:
    with pytest.raises(OperatorError, match="at least 12"):
        add(accounts_db, "ana@fund.com", password=password)


def test_sign_in_opens_a_session_that_a_reload_resumes(accounts_db: Engine) -> None:
    add(accounts_db, "ana@fund.com")
    signed = accounts.sign_in(accounts_db, email="ANA@fund.com ", password=PASSWORD)
    assert (signed.actor.name, signed.actor.role) == ("ana@fund.com", Role.OPERATOR)
    assert accounts.resume_session(accounts_db, signed.token) == signed.actor
    assert accounts.resume_session(accounts_db, signed.token + "x") is None
    with accounts_db.connect() as conn:
        stored = conn.execute(text("SELECT token_sha256 FROM account_sessions")).scalar_one()
    assert signed.token not in stored
    assert len(events(accounts_db, "auth.sign_in", "ana@fund.com")) == 1


def test_a_wrong_password_is_refused_without_saying_which_part(accounts_db: Engine) -> None:
    add(accounts_db, "ana@fund.com")
    for email, password in [("ana@fund.com", "wrong password!"), ("who@fund.com", PASSWORD)]:
        with pytest.raises(SignInRefused, match="Wrong e-mail or password"):
            accounts.sign_in(accounts_db, email=email, password=password)
    [failure] = events(accounts_db, "auth.sign_in_failed", "ana@fund.com")
    assert failure["details"] == {"reason": "wrong password", "attempts": 1}


def test_failures_are_slowed_down(accounts_db: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accounts, "FAILURE_DELAY_SECONDS", 0.5)
    add(accounts_db, "ana@fund.com")
    started = time.monotonic()
    with pytest.raises(SignInRefused):
        accounts.sign_in(accounts_db, email="ana@fund.com", password="wrong password!")
    assert time.monotonic() - started >= 0.5


def test_five_wrong_passwords_in_a_row_lock_the_account(accounts_db: Engine) -> None:
    add(accounts_db, "ana@fund.com")
    for _ in range(4):
        with pytest.raises(SignInRefused, match="Wrong e-mail or password"):
            accounts.sign_in(accounts_db, email="ana@fund.com", password="wrong password!")
    with pytest.raises(SignInRefused, match="locked after 5 wrong passwords"):
        accounts.sign_in(accounts_db, email="ana@fund.com", password="wrong password!")
    # Locked: even the right password is refused, with the same clear sentence.
    with pytest.raises(SignInRefused, match="locked") as refusal:
        accounts.sign_in(accounts_db, email="ana@fund.com", password=PASSWORD)
    assert refusal.value.title == "Account locked"
    [locked] = events(accounts_db, "auth.locked", "ana@fund.com")
    assert locked["details"]["minutes"] == 15

    # Fifteen minutes later the right password works again.
    with accounts_db.begin() as conn:
        conn.execute(text("UPDATE accounts SET locked_until = now() - interval '1 second'"))
    assert accounts.sign_in(accounts_db, email="ana@fund.com", password=PASSWORD)


def test_a_success_resets_the_count_of_failures(accounts_db: Engine) -> None:
    add(accounts_db, "ana@fund.com")
    for _ in range(4):
        with pytest.raises(SignInRefused):
            accounts.sign_in(accounts_db, email="ana@fund.com", password="wrong password!")
    accounts.sign_in(accounts_db, email="ana@fund.com", password=PASSWORD)
    with pytest.raises(SignInRefused, match="Wrong e-mail or password"):
        accounts.sign_in(accounts_db, email="ana@fund.com", password="wrong password!")


def test_an_idle_session_expires(accounts_db: Engine) -> None:
    add(accounts_db, "ana@fund.com")
    signed = accounts.sign_in(accounts_db, email="ana@fund.com", password=PASSWORD)
    with accounts_db.begin() as conn:
        conn.execute(text("UPDATE account_sessions SET last_seen_at = now() - interval '31 min'"))
    short = Settings(session_idle_minutes=30)
    assert accounts.resume_session(accounts_db, signed.token, settings=short) is None
    assert accounts.resume_session(accounts_db, signed.token, settings=Settings()) is not None


def test_sign_out_ends_every_session_of_the_account(accounts_db: Engine) -> None:
    add(accounts_db, "ana@fund.com")
    first = accounts.sign_in(accounts_db, email="ana@fund.com", password=PASSWORD)
    second = accounts.sign_in(accounts_db, email="ana@fund.com", password=PASSWORD)
    accounts.sign_out(accounts_db, first.token)
    assert accounts.resume_session(accounts_db, first.token) is None
    assert accounts.resume_session(accounts_db, second.token) is None
    assert len(events(accounts_db, "auth.sign_out", "ana@fund.com")) == 1


def test_disabling_an_account_ends_its_sessions_and_its_sign_ins(accounts_db: Engine) -> None:
    add(accounts_db, "admin@fund.com", role="admin")
    add(accounts_db, "ana@fund.com")
    signed = accounts.sign_in(accounts_db, email="ana@fund.com", password=PASSWORD)
    accounts.disable_account(accounts_db, actor=ADMIN, email="ana@fund.com")
    assert accounts.resume_session(accounts_db, signed.token) is None
    with pytest.raises(SignInRefused):
        accounts.sign_in(accounts_db, email="ana@fund.com", password=PASSWORD)
    [disabled] = events(accounts_db, "account.disable", "ana@fund.com")
    assert disabled["actor"] == ADMIN.name


def test_a_role_change_applies_to_open_sessions(accounts_db: Engine) -> None:
    add(accounts_db, "ana@fund.com")
    signed = accounts.sign_in(accounts_db, email="ana@fund.com", password=PASSWORD)
    accounts.set_role(accounts_db, actor=ADMIN, email="ana@fund.com", role="viewer")
    assert accounts.resume_session(accounts_db, signed.token).role is Role.VIEWER
    [change] = events(accounts_db, "account.set_role", "ana@fund.com")
    assert change["details"] == {"from": "operator", "to": "viewer"}


@pytest.mark.slow
def test_reset_password_lifts_the_lock_and_ends_sessions(accounts_db: Engine) -> None:
    add(accounts_db, "ana@fund.com")
    old = accounts.sign_in(accounts_db, email="ana@fund.com", password=PASSWORD)
    for _ in range(5):
        with pytest.raises(SignInRefused):
            accounts.sign_in(accounts_db, email="ana@fund.com", password="wrong password!")
    accounts.reset_password(
        accounts_db, actor=ADMIN, email="ana@fund.com", password="a brand new password"
    )
    assert accounts.resume_session(accounts_db, old.token) is None
    assert accounts.sign_in(accounts_db, email="ana@fund.com", password="a brand new password")


def test_the_last_admin_stays(accounts_db: Engine) -> None:
    add(accounts_db, "admin@fund.com", role="admin")
    with pytest.raises(OperatorError, match="last active admin"):
        accounts.disable_account(accounts_db, actor=ADMIN, email="admin@fund.com")
    with pytest.raises(OperatorError, match="last active admin"):
        accounts.set_role(accounts_db, actor=ADMIN, email="admin@fund.com", role="operator")


@pytest.mark.parametrize("actor", [VIEWER, OPERATOR])
def test_only_admins_manage_accounts(accounts_db: Engine, actor) -> None:
    add(accounts_db, "ana@fund.com")
    calls = [
        lambda: accounts.list_accounts(accounts_db, actor=actor),
        lambda: accounts.create_account(
            accounts_db, actor=actor, email="x@fund.com", role="admin", password=PASSWORD
        ),
        lambda: accounts.disable_account(accounts_db, actor=actor, email="ana@fund.com"),
        lambda: accounts.set_role(accounts_db, actor=actor, email="ana@fund.com", role="admin"),
        lambda: accounts.reset_password(
            accounts_db, actor=actor, email="ana@fund.com", password=PASSWORD
        ),
    ]
    for call in calls:
        with pytest.raises(Forbidden):
            call()
    assert [a.email for a in accounts.list_accounts(accounts_db, actor=ADMIN)] == ["ana@fund.com"]


def test_the_command_line_acts_as_its_os_user() -> None:
    actor = cli_actor()
    assert actor.name.startswith("cli:") and actor.role is Role.ADMIN


@pytest.mark.parametrize(
    ("email", "settings", "role"),
    [
        ("boss@fund.com", Settings(oidc_admins="boss@fund.com"), Role.ADMIN),
        ("ana@fund.com", Settings(oidc_operators="@fund.com"), Role.OPERATOR),
        ("ana@fund.com", Settings(oidc_viewers="@fund.com, x@y.com"), Role.VIEWER),
        ("ana@fund.com.evil.org", Settings(oidc_operators="@fund.com"), None),
        ("ana@other.com", Settings(oidc_operators="@fund.com"), None),
    ],
)
def test_oidc_identities_get_their_role_from_the_lists(
    accounts_db: Engine, email: str, settings: Settings, role: Role | None
) -> None:
    assert accounts.oidc_role(accounts_db, email=email, settings=settings) is role


def test_an_oidc_account_without_password_wins_over_the_lists(accounts_db: Engine) -> None:
    add(accounts_db, "ana@fund.com", role="viewer", password=None)
    settings = Settings(oidc_admins="@fund.com")
    assert accounts.oidc_role(accounts_db, email="ANA@fund.com", settings=settings) is Role.VIEWER
    with pytest.raises(SignInRefused):  # no password: not through the sign-in form
        accounts.sign_in(accounts_db, email="ana@fund.com", password=PASSWORD)
    accounts.disable_account(accounts_db, actor=cli_actor(), email="ana@fund.com")
    with pytest.raises(SignInRefused, match="no access"):
        accounts.oidc_actor(accounts_db, email="ana@fund.com", settings=settings)


def test_the_audit_trail_is_append_only(accounts_db: Engine) -> None:
    add(accounts_db, "ana@fund.com")
    for statement in (
        "UPDATE audit_events SET actor = 'someone else'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
    ):
        with (
            pytest.raises(DBAPIError, match=r"append-only|permission denied"),
            accounts_db.begin() as conn,
        ):
            conn.execute(text(statement))
    assert events(accounts_db, "account.create", "ana@fund.com")


def test_admins_read_filter_and_export_the_trail(accounts_db: Engine) -> None:
    add(accounts_db, "ana@fund.com")
    add(accounts_db, "=cmd@fund.com")
    only_ana = AuditFilter(action="account.create", subject="ana@fund.com")
    with accounts_db.connect() as conn:  # an earlier test's ana is in the trail too
        newest = conn.execute(text("SELECT max(id) FROM audit_events")).scalar_one()
    row = audit_events(accounts_db, actor=ADMIN, audit_filter=only_ana, timezone=TZ)[0]
    assert (row["actor"], row["subject"]) == (ADMIN.name, "ana@fund.com")
    assert row["id"] == newest - 1
    with pytest.raises(Forbidden):
        audit_events(accounts_db, actor=OPERATOR, audit_filter=only_ana, timezone=TZ)

    exported = (
        audit_csv_file(
            accounts_db, actor=ADMIN, audit_filter=AuditFilter(action="account.create"), timezone=TZ
        )
        .read()
        .decode("utf-8-sig")
    )
    lines = exported.splitlines()
    assert lines[0] == '"id","at","actor","action","subject","details"'
    assert any('"ana@fund.com"' in line for line in lines)
    assert any('"\'=cmd@fund.com"' in line for line in lines)  # no formula for a spreadsheet
    [export] = audit_events(
        accounts_db, actor=ADMIN, audit_filter=AuditFilter(action="audit.export"), timezone=TZ
    )[:1]
    assert export["details"]["filter"] == {"action": "account.create"}
    assert export["details"]["rows"] == len(lines) - 1


def test_an_address_the_provider_has_not_verified_is_refused(accounts_db: Engine) -> None:
    settings = Settings(oidc_operators="@fund.com")
    with pytest.raises(SignInRefused, match="not verified"):
        accounts.oidc_actor(
            accounts_db, email="ana@fund.com", email_verified=False, settings=settings
        )
    actor = accounts.oidc_actor(accounts_db, email="ana@fund.com", settings=settings)
    assert actor.role is Role.OPERATOR
    [refused] = events(accounts_db, "auth.sign_in_failed", "ana@fund.com")
    assert refused["details"] == {"reason": "unverified", "method": "oidc"}


def test_activity_keeps_a_short_session_open(accounts_db: Engine) -> None:
    """With a one-minute limit, a click every 40 s keeps the session: each use counts."""
    add(accounts_db, "ana@fund.com")
    signed = accounts.sign_in(accounts_db, email="ana@fund.com", password=PASSWORD)
    one_minute = Settings(session_idle_minutes=1)
    for _ in range(3):
        with accounts_db.begin() as conn:  # 40 s pass between two clicks
            conn.execute(
                text("UPDATE account_sessions SET last_seen_at = last_seen_at - interval '40 s'")
            )
        assert accounts.resume_session(accounts_db, signed.token, settings=one_minute)
