"""The HTTP API: the bank's payment webhook, debtor-file uploads and a health check.

Run it with `python -m billing api` (uvicorn on API_PORT, 8000 by default), or
`uvicorn billing.entrypoints.api:app`. It refuses to start without a strong WEBHOOK_SECRET (and,
when set, API_TOKEN): at least 32 bytes and no placeholder such as .env.example's
`change-me…`. It applies pending migrations first.

    POST /webhooks/payments   {"debtId", "paidAt", "paidAmount", "paidBy"}, signed:
                              X-Signature: sha256=<hex HMAC-SHA256 of the raw body
                              with WEBHOOK_SECRET>. 200 {"status": "recorded" |
                              "duplicate", "chargeStatus", ...}; 401 unsigned or badly
                              signed; 400 not a JSON object; 422 a bad field; 404 an
                              unknown debtId. Safe to retry: a payment is recorded once.
    POST /debtors/upload      multipart `file` (+ `lenient_documents`), with
                              Authorization: Bearer <API_TOKEN>: the dashboard's import.
                              200 the import's result; 422 when the file is refused.
    POST /bank/retornos       multipart `file`, with Authorization: Bearer <API_TOKEN>: a
                              CNAB 240 retorno from the bank (billing.cnab). 200 its
                              counts; 422 when the file is refused (nothing written).
    GET  /health              {"status": "ok"} when the database answers, else 503.

Every error is {"detail": "<a sentence>"}; tracebacks go to the log, never a response.
While the database cannot be reached (stopped, restarting, a connection dropped mid-way)
every endpoint answers 503 with a Retry-After header, and the API needs no restart when
it is back: the pool checks each connection before use (pool_pre_ping) and opens new ones.
A bank retries a 503; nothing was recorded, since each request is one transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from billing.accounts.access import API_ACTOR, WEBHOOK_ACTOR
from billing.core.errors import OperatorError
from billing.core.settings import Settings, get_settings
from billing.imports.service import import_file
from billing.payments.service import (
    InvalidPayment,
    NotFound,
    UnreadableBody,
    check_timezone,
    read_payment_notification,
    record_payment,
)

log = logging.getLogger(__name__)

MAX_WEBHOOK_BYTES = 64 * 1024
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
_MULTIPART_OVERHEAD = 1024 * 1024
RETRY_AFTER_SECONDS = 5  # what a 503 asks a client to wait before trying again
UNAVAILABLE = "The database is unavailable; nothing was recorded. Try again in a moment."
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def create_app(*, settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    """The API, ready to serve: secrets checked, database migrated.

    Raises OperatorError when WEBHOOK_SECRET is missing or weak, API_TOKEN is set but weak,
    or TIMEZONE is unknown.
    """
    settings = settings or get_settings()
    check_secrets(settings)
    check_timezone(settings.timezone)
    own_engine = engine is None
    if engine is None:
        from db.engine import get_engine

        engine = get_engine()
    from db.migrations import migrate, migrate_database

    applied = migrate_database() if own_engine else migrate(engine)
    if applied:
        log.info("applied migrations: %s", ", ".join(applied))
    if not settings.api_token:
        log.warning("API_TOKEN is not set: POST /debtors/upload answers 503")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if own_engine:
            engine.dispose()

    app = FastAPI(
        title="Billing API",
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    _add_error_handlers(app)

    @app.get("/health")
    def health() -> JSONResponse:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            log.warning("health check: the database does not answer (%s)", _first_line(exc))
            return JSONResponse(
                {"status": "unavailable", "detail": "The database does not answer."},
                status_code=503,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        return JSONResponse({"status": "ok"})

    @app.post("/webhooks/payments")
    async def payment_webhook(request: Request) -> JSONResponse:
        body = await _read_body(request, limit=MAX_WEBHOOK_BYTES)
        _check_signature(body, request.headers.get("x-signature"), settings.webhook_secret)
        notification = read_payment_notification(body, timezone=settings.timezone)
        outcome = await run_in_threadpool(
            lambda: record_payment(
                engine,
                debt_id=notification.debt_id,
                paid_at=notification.paid_at,
                paid_amount=notification.paid_amount,
                paid_by=notification.paid_by,
                source="webhook",
                payload=notification.payload,
                actor=WEBHOOK_ACTOR,
                timezone=settings.timezone,
            )
        )
        return JSONResponse(outcome.as_json())

    @app.post("/debtors/upload")
    async def upload_debtors(request: Request) -> JSONResponse:
        _check_token(request, settings)
        length = request.headers.get("content-length", "")
        limit = settings.max_import_file_bytes
        if length.isdigit() and int(length) > limit + _MULTIPART_OVERHEAD:
            raise HTTPException(413, _too_large(settings))
        # The form spools the file to disk past 1 MB; the import reads it a piece at a time.
        async with request.form(max_files=1, max_fields=10) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise HTTPException(422, "Send the debtor file as the multipart form field 'file'.")
            lenient = _form_flag(form.get("lenient_documents"), "lenient_documents")
            file_name = _base_name(upload.filename) or "upload.csv"
            if (upload.size or 0) > limit:
                raise HTTPException(413, _too_large(settings))
            result = await run_in_threadpool(
                lambda: import_file(
                    engine=engine,
                    actor=API_ACTOR,
                    source=upload.file,
                    file_name=file_name,
                    lenient_documents=lenient,
                    settings=settings,
                )
            )
        body = result.as_dict()
        if result.status == "refused":
            return JSONResponse({"detail": result.error, **body}, status_code=422)
        return JSONResponse(body)

    @app.post("/bank/retornos")
    async def upload_retorno(request: Request) -> JSONResponse:
        from billing.cnab.service import import_retorno

        _check_token(request, settings)
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > settings.max_file_bytes + _MULTIPART_OVERHEAD:
            raise HTTPException(413, _too_large(settings))
        async with request.form(max_files=1, max_fields=10) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise HTTPException(422, "Send the retorno as the multipart form field 'file'.")
            data = await upload.read(settings.max_file_bytes + 1)
            file_name = _base_name(upload.filename) or "retorno.ret"
        if len(data) > settings.max_file_bytes:
            raise HTTPException(413, _too_large(settings))
        result = await run_in_threadpool(
            lambda: import_retorno(
                engine, actor=API_ACTOR, data=data, file_name=file_name, settings=settings
            )
        )
        body = result.as_dict()
        if result.status == "refused":
            return JSONResponse({"detail": result.error, **body}, status_code=422)
        return JSONResponse(body)

    return app


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


def __getattr__(name: str) -> Any:
    """`uvicorn billing.entrypoints.api:app` builds the app on first use, not at import."""
    if name == "app":
        return create_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def signature(body: bytes, secret: str) -> str:
    """The X-Signature value the bank sends for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _check_signature(body: bytes, header: str | None, secret: str) -> None:
    if not header or not header.strip():
        raise HTTPException(401, "Missing X-Signature header (sha256=<HMAC-SHA256 of the body>).")
    expected = signature(body, secret).encode()
    received = header.strip().lower().encode("utf-8", "replace")
    if not hmac.compare_digest(expected, received):
        raise HTTPException(401, "The X-Signature header does not match the body.")


def _check_token(request: Request, settings: Settings) -> None:
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


async def _read_body(request: Request, *, limit: int) -> bytes:
    """The raw body (the signature covers its exact bytes), refused beyond `limit`."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise HTTPException(413, f"The body is larger than {limit // 1024} KB.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"The body is larger than {limit // 1024} KB.")
        chunks.append(chunk)
    return b"".join(chunks)


def _form_flag(value: object, name: str) -> bool:
    if value is None:
        return False
    text_value = str(value).strip().lower() if isinstance(value, str) else None
    if text_value in _TRUE:
        return True
    if text_value in _FALSE:
        return False
    raise HTTPException(422, f"{name} must be true or false.")


def _base_name(file_name: str | None) -> str:
    """The file's own name, without any folder a browser or client sent along."""
    return PureWindowsPath(PurePosixPath(file_name or "").name).name.strip()


def database_unreachable(exc: BaseException) -> bool:
    """Whether `exc` means the database cannot be reached now (a 503 to retry), rather than
    a bug (a 500): no connection, one dropped mid-request, the server shutting down or
    starting up, or no pooled connection free in time."""
    if isinstance(exc, PoolTimeout):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError)


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def _too_large(settings: Settings) -> str:
    return f"The file is larger than {settings.max_import_file_mb} MB (MAX_IMPORT_FILE_MB)."


def _add_error_handlers(app: FastAPI) -> None:
    def answer(status: int) -> Any:
        async def handler(request: Request, exc: OperatorError) -> JSONResponse:
            return JSONResponse({"detail": exc.message}, status_code=status)

        return handler

    app.add_exception_handler(UnreadableBody, answer(400))
    app.add_exception_handler(InvalidPayment, answer(422))
    app.add_exception_handler(NotFound, answer(404))
    app.add_exception_handler(OperatorError, answer(409))

    async def database_error(request: Request, exc: Exception) -> JSONResponse:
        if not database_unreachable(exc):
            raise exc  # a bug: on to the 500 below, and its traceback in the log
        log.warning(
            "%s %s: the database does not answer (%s)",
            request.method,
            request.url.path,
            _first_line(exc),
        )
        return JSONResponse(
            {"detail": UNAVAILABLE},
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    app.add_exception_handler(DBAPIError, database_error)
    app.add_exception_handler(PoolTimeout, database_error)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette raises the exception again after this answer: the server logs it
        # with its traceback, once.
        log.error("%s %s failed: %s", request.method, request.url.path, type(exc).__name__)
        return JSONResponse(
            {"detail": "Internal error; the details are in the server's log."},
            status_code=500,
        )

    app.add_exception_handler(Exception, unexpected)
