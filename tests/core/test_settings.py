"""Settings: each defined once, read from the environment, documented, bad values explained."""

from __future__ import annotations

from dataclasses import fields
from decimal import Decimal
from pathlib import Path

import pytest

from billing.core.errors import OperatorError
from billing.core.settings import (
    ENVIRONMENT_VARIABLES,
    LANGUAGES,
    SECRET_SUFFIXES,
    Settings,
    get_settings,
    readme_table,
    shown_setting,
    url_without_password,
)

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_has_one_environment_variable() -> None:
    assert len(ENVIRONMENT_VARIABLES) == len(fields(Settings))
    assert len(set(ENVIRONMENT_VARIABLES)) == len(ENVIRONMENT_VARIABLES)


def readme_settings_section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return readme.split("## Environment variables\n\n", 1)[1].split("\n## ", 1)[0]


def test_the_readme_table_is_the_settings_definition() -> None:
    """Edit a setting in billing/core/settings.py, then paste the output of
    `python -m billing.core.settings` over the README's table."""
    assert readme_settings_section() == readme_table()
    for variable in ENVIRONMENT_VARIABLES:
        assert f"| `{variable}` |" in readme_settings_section()


def test_an_empty_environment_gives_the_defaults() -> None:
    assert Settings.from_env({}) == Settings()
    assert Settings.from_env({name: "  " for name in ENVIRONMENT_VARIABLES}) == Settings()
    assert Settings().language == "pt_BR"


@pytest.mark.parametrize(
    ("variable", "text", "name", "value"),
    [
        ("MAX_FILE_MB", "10", "max_file_mb", 10),
        ("SMTP_PORT", " 587 ", "smtp_port", 587),
        ("BANK_FINE_PERCENT", "2,00", "bank_fine_percent", Decimal("2.00")),
        ("BANK_FINE_PERCENT", "2.5", "bank_fine_percent", Decimal("2.5")),
        ("MAX_DEBT_AMOUNT", "1000,50", "max_debt_amount", Decimal("1000.50")),
        ("MAIL_ATTACH_PDF", "1", "mail_attach_pdf", True),
        ("MAIL_ATTACH_PDF", "true", "mail_attach_pdf", True),
        ("MAIL_ATTACH_PDF", "Yes", "mail_attach_pdf", True),
        ("MAIL_ATTACH_PDF", "ON", "mail_attach_pdf", True),
        ("NOTICE_ON_ISSUE", "0", "notice_on_issue", False),
        ("NOTICE_ON_ISSUE", "false", "notice_on_issue", False),
        ("NOTICE_ON_ISSUE", "no", "notice_on_issue", False),
        ("NOTICE_ON_ISSUE", "Off", "notice_on_issue", False),
        ("SMTP_SECURITY", "STARTTLS", "smtp_security", "starttls"),
        ("SMTP_SECURITY", "ssl", "smtp_security", "ssl"),
        ("AUTH_MODE", "OIDC", "auth_mode", "oidc"),
        ("LANGUAGE", "en", "language", "en"),
        ("LANGUAGE", "PT_br", "language", "pt_BR"),
        # GNU gettext reads LANGUAGE too, as a list: the first language we speak wins.
        ("LANGUAGE", "en_US:en", "language", "en"),
        ("LANGUAGE", "de_DE:pt_BR.UTF-8", "language", "pt_BR"),
        ("BILLING_DATA_DIR", "/srv/billing", "data_dir", Path("/srv/billing")),
        ("MAIL_FROM", "  Fundo <fundo@example.com> ", "mail_from", "Fundo <fundo@example.com>"),
        ("SMTP_PASSWORD", "s3cr3t", "smtp_password", "s3cr3t"),
    ],
)
def test_values_come_from_the_environment(
    variable: str, text: str, name: str, value: object
) -> None:
    assert getattr(Settings.from_env({variable: text}), name) == value


@pytest.mark.parametrize(
    ("variable", "text", "message"),
    [
        ("SMTP_PORT", "abc", "SMTP_PORT must be a whole number, not 'abc'."),
        ("MAX_FILE_MB", "2.5", "MAX_FILE_MB must be a whole number, not '2.5'."),
        (
            "BANK_FINE_PERCENT",
            "dois",
            "BANK_FINE_PERCENT must be a number such as 2.00, not 'dois'",
        ),
        ("BANK_DISCOUNT_PERCENT", "1.000,00", "BANK_DISCOUNT_PERCENT must be a number"),
        ("MAX_DEBT_AMOUNT", "NaN", "MAX_DEBT_AMOUNT must be a number such as 2.00, not 'NaN'."),
        ("MAIL_ATTACH_PDF", "maybe", "MAIL_ATTACH_PDF must be true or false"),
        ("SMTP_SECURITY", "tls", "SMTP_SECURITY must be none, starttls or ssl, not 'tls'."),
        ("AUTH_MODE", "ldap", "AUTH_MODE must be accounts or oidc, not 'ldap'."),
        ("LANGUAGE", "fr", "LANGUAGE must be pt_BR or en, not 'fr'."),
    ],
)
def test_a_bad_value_is_explained_at_start_up(variable: str, text: str, message: str) -> None:
    with pytest.raises(OperatorError) as refused:
        Settings.from_env({variable: text})
    assert refused.value.message.startswith(message)


def test_every_bad_value_is_named_in_one_error() -> None:
    with pytest.raises(OperatorError) as refused:
        Settings.from_env({"SMTP_PORT": "x", "LANGUAGE": "de", "SMTP_HOST": "mail"})
    assert "SMTP_PORT must be a whole number, not 'x'." in refused.value.message
    assert "LANGUAGE must be pt_BR or en, not 'de'." in refused.value.message
    assert "SMTP_HOST" not in refused.value.message


def test_settings_are_read_from_the_process_environment_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SMTP_PORT", "twenty-five")
    with pytest.raises(OperatorError, match="SMTP_PORT must be a whole number"):
        Settings.from_env()
    monkeypatch.setenv("SMTP_PORT", "2525")
    get_settings.cache_clear()
    try:
        assert get_settings().smtp_port == 2525
        monkeypatch.setenv("SMTP_PORT", "2526")
        assert get_settings().smtp_port == 2525  # cached until cleared
        get_settings.cache_clear()
        assert get_settings().smtp_port == 2526
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_the_language_is_one_of_the_languages() -> None:
    assert LANGUAGES == ("pt_BR", "en")
    assert Settings().language in LANGUAGES


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
    settings = Settings.from_env({name.upper(): secret_of(name) for name in secret_names})

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
