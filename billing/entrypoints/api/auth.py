"""Who may call the API: the secrets it refuses to start with, the webhook's HMAC
signature and the uploads' bearer token."""

from __future__ import annotations

import hashlib
import hmac

from fastapi import HTTPException, Request

from billing.core.errors import OperatorError
from billing.core.settings import Settings

MIN_SECRET_BYTES = 32
# Every placeholder in .env.example starts with "change-me"; and the usual suspects.
PLACEHOLDER_PREFIX = "change-me"
PLACEHOLDERS = frozenset(
    {
        "changeme", "change_me", "change-me", "secret", "password", "passwd", "token",
        "default", "example", "test", "testing", "dev", "admin", "webhook-secret",
        "webhook_secret", "api-token", "api_token", "your-secret-here", "replace-me",
        "todo", "xxx",
    }
)  # fmt: skip
SECRET_RECIPE = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'


def check_secrets(settings: Settings) -> None:
    """Refuse to serve with a missing, short or placeholder secret (closed by default)."""
    if not settings.webhook_secret:
        raise OperatorError(
            "WEBHOOK_SECRET is not set: set it to the secret shared with the bank "
            f"(at least {MIN_SECRET_BYTES} random bytes) and start again.",
            title="The API cannot start",
        )
    secrets = {"WEBHOOK_SECRET": settings.webhook_secret}
    if settings.api_token:
        secrets["API_TOKEN"] = settings.api_token
    for name, value in secrets.items():
        problem = weak_secret_problem(value)
        if problem:
            raise OperatorError(
                f"{name} {problem}: set it to at least {MIN_SECRET_BYTES} random bytes "
                f"(for example the output of `{SECRET_RECIPE}`) and start again.",
                title="The API cannot start",
            )


def weak_secret_problem(value: str) -> str | None:
    """Why `value` is no secret (a placeholder, too short), or None when it will do."""
    folded = value.strip().casefold()
    if folded.startswith(PLACEHOLDER_PREFIX) or folded in PLACEHOLDERS:
        return "is a placeholder, not a secret"
    if len(set(folded)) == 1:
        return "repeats one character"
    size = len(value.encode("utf-8"))
    if size < MIN_SECRET_BYTES:
        return f"is {size} bytes long, shorter than {MIN_SECRET_BYTES}"
    return None


def signature(body: bytes, secret: str) -> str:
    """The X-Signature value the bank sends for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def check_signature(body: bytes, header: str | None, secret: str) -> None:
    """401 unless `header` is the HMAC-SHA256 of `body` with `secret`."""
    if not header or not header.strip():
        raise HTTPException(401, "Missing X-Signature header (sha256=<HMAC-SHA256 of the body>).")
    expected = signature(body, secret).encode()
    received = header.strip().lower().encode("utf-8", "replace")
    if not hmac.compare_digest(expected, received):
        raise HTTPException(401, "The X-Signature header does not match the body.")


def check_token(request: Request, settings: Settings) -> None:
    """503 while uploads are off (no API_TOKEN); 401 without the right bearer token."""
    if not settings.api_token:
        raise HTTPException(503, "Uploads through the API are off: API_TOKEN is not set.")
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode("utf-8", "replace"), settings.api_token.encode()
    ):
        raise HTTPException(
            401,
            "Send Authorization: Bearer <API_TOKEN> to upload files.",
            headers={"WWW-Authenticate": "Bearer"},
        )
