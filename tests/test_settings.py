"""Settings: every variable documented, read from the environment, bad values explained."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from billing.errors import OperatorError
from billing.settings import ENVIRONMENT_VARIABLES, Settings

ROOT = Path(__file__).resolve().parent.parent


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
