"""One settings object, read from the environment.

Defaults suit a laptop: no variable is needed to run the dashboard on the embedded
PostgreSQL. Every setting is listed in the README's table (a test checks that).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    return value in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """Everything the product reads from the environment, in one place."""

    database_url: str
    data_dir: Path
    max_file_mb: int
    max_debt_amount: Decimal

    @property
    def max_file_bytes(self) -> int:
        return self.max_file_mb * 1024 * 1024

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            database_url=_env("DATABASE_URL", ""),
            data_dir=Path(_env("BILLING_DATA_DIR", str(PROJECT_ROOT / ".data"))),
            max_file_mb=int(_env("MAX_FILE_MB", "250")),
            max_debt_amount=Decimal(_env("MAX_DEBT_AMOUNT", "99999999.99")),
        )


ENVIRONMENT_VARIABLES: dict[str, str] = {
    "database_url": "DATABASE_URL",
    "data_dir": "BILLING_DATA_DIR",
    "max_file_mb": "MAX_FILE_MB",
    "max_debt_amount": "MAX_DEBT_AMOUNT",
}


def setting_names() -> list[str]:
    """The environment variable behind every setting (the README documents each)."""
    return [ENVIRONMENT_VARIABLES[f.name] for f in fields(Settings)]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()


__all__ = ["Settings", "_env_bool", "get_settings", "setting_names"]
