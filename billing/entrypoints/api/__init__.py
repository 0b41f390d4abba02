"""The HTTP API: create_app (app.py) puts each concern's routes on the app, one module each
(payments, debtors, retornos, health), with the secrets rules (auth.py) and error answers."""

from __future__ import annotations

from typing import Any

from billing.entrypoints.api.app import create_app
from billing.entrypoints.api.auth import (
    MIN_SECRET_BYTES,
    check_secrets,
    signature,
    weak_secret_problem,
)
from billing.entrypoints.api.errors import database_unreachable
from billing.entrypoints.api.payments import MAX_WEBHOOK_BYTES

__all__ = [
    "MAX_WEBHOOK_BYTES",
    "MIN_SECRET_BYTES",
    "check_secrets",
    "create_app",
    "database_unreachable",
    "signature",
    "weak_secret_problem",
]


def __getattr__(name: str) -> Any:
    """`uvicorn billing.entrypoints.api:app` builds the app on first use, not at import."""
    if name == "app":
        return create_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
