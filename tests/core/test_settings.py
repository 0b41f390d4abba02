"""Settings: every variable documented, read from the environment, bad values explained."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from billing.core.errors import OperatorError
from billing.core.settings import (
    ENVIRONMENT_VARIABLES,
    SECRET_SUFFIXES,
    Settings,
    shown_setting,
    url_without_password,
)

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_has_one_environment_variable() -> None:
    assert len(ENVIRONMENT_VARIABLES) == len(fields(Settings))
    assert len(set(ENVIRONMENT_VARIABLES)) == len(ENVIRONMENT_VARIABLES)


def test_every_environment_variable_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", readme, flags=re.MULTILINE))
    assert set(ENVIRONMENT_VARIABLES) <= documented, set(ENVIRONMENT_VARIABLES) - documented


def test_values_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_FILE_MB", "10")
    monkeypatch.setenv("MAIL_ATTACH_PDF", "yes")
    monkeypatch.setenv("SMTP_SECURITY", "STARTTLS")
    settings = Settings.from_env()
    assert settings.max_file_bytes == 10 * 1024 * 1024
    assert settings.mail_attach_pdf is True
    assert settings.smtp_security == "starttls"


def test_a_bad_number_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_PORT", "twenty-five")
    with pytest.raises(OperatorError, match="SMTP_PORT must be a whole number"):
        Settings.from_env()


def test_no_secret_is_committed() -> None:
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    assert "change-me" in example  # placeholders only
    assert not (ROOT / ".env").exists() or ".env" in (ROOT / ".gitignore").read_text()


SECRET_FIELDS = {
    "database_url", "migration_database_url", "smtp_password", "webhook_secret", "api_token",
}  # fmt: skip


def secret_of(name: str) -> str:
    """A value for setting `name` whose secret part is recognisable: 'pw-<name>'."""
    if name.endswith("_url"):
        return f"postgresql://billing:pw-{name}@db.internal:5432/billing"
    return f"pw-{name}"


def test_a_printed_settings_object_shows_no_secret() -> None:
    suffixes = (*SECRET_SUFFIXES, "_url")
    secret_names = {f.name for f in fields(Settings) if f.name.endswith(suffixes)}
    assert secret_names >= SECRET_FIELDS  # every known secret is covered by its name
    settings = Settings(**{name: secret_of(name) for name in secret_names})

    for shown in (repr(settings), str(settings), f"{settings}", repr([settings])):
        for name in secret_names:
            assert f"pw-{name}" not in shown, name
    shown = repr(settings)
    assert "smtp_password='***'" in shown
    assert "webhook_secret='***'" in shown
    assert "api_token='***'" in shown
    assert "database_url='postgresql://billing:***@db.internal:5432/billing'" in shown
    assert "smtp_host='localhost'" in shown  # everything else as it is
    assert shown.startswith("Settings(database_url=")


def test_unset_secrets_show_as_unset() -> None:
    shown = repr(Settings())
    assert "smtp_password=''" in shown
    assert "database_url=''" in shown


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        ("oidc_client_secret", "abc", "***"),  # any field named so, added later too
        ("replica_token", "abc", "***"),
        ("replica_password", "abc", "***"),
        ("replica_url", "postgresql://u:pw@h/d", "postgresql://u:***@h/d"),
        ("replica_url", "", ""),
        ("smtp_user", "billing", "billing"),
        ("smtp_port", 25, 25),
    ],
)
def test_which_settings_are_hidden(name: str, value: object, shown: object) -> None:
    assert shown_setting(name, value) == shown


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://billing:s3cr3t@db:5432/billing", "postgresql://billing:***@db:5432/billing"),
        ("postgresql://billing:p@ss:w/rd@db/billing", "postgresql://billing:***@db/billing"),
        ("postgresql://billing:p%40ss@db/billing", "postgresql://billing:***@db/billing"),
        ("postgres://:pw@db/billing", "postgres://:***@db/billing"),
        ("postgresql://billing:pw\n@db/billing", "postgresql://billing:***@db/billing"),
        ("postgresql://billing@db/billing", "postgresql://billing@db/billing"),
        ("postgresql://db:5432/billing", "postgresql://db:5432/billing"),
        ("postgresql:///billing?host=/run/pg&password=pw", "postgresql:///billing?host=/run/pg&password=***"),
        ("postgresql://u@db/b?sslpassword=pw&sslmode=verify-full",
         "postgresql://u@db/b?sslpassword=***&sslmode=verify-full"),
        ("host=db user=billing password='p w\\' d' dbname=billing",
         "host=db user=billing password=*** dbname=billing"),
        ("host=db PASSWORD = pw dbname=billing", "host=db PASSWORD = *** dbname=billing"),
    ],
)  # fmt: skip
def test_urls_lose_their_passwords(url: str, shown: str) -> None:
    assert url_without_password(url) == shown
