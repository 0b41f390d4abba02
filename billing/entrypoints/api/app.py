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

Each concern lives in its own module, whose `add_…_routes(router, settings=…, engine=…)`
puts its routes on the app's own router: the settings and engine are given when the app
is built, so apps with different settings live side by side (the tests build several).
They go on `app.router` itself rather than through `include_router`, which since FastAPI
0.137 keeps an included router as one lazy node in `app.routes` (no `.path`), matched
through an extra layer on every request; this way `app.routes` stays the flat list of
routes it always was.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import APIRouter, FastAPI
from sqlalchemy import Engine
from starlette.types import ASGIApp, Receive, Scope, Send

from billing.core.i18n import language_used
from billing.core.settings import Settings, get_settings
from billing.entrypoints.api.auth import check_secrets
from billing.entrypoints.api.debtors import add_debtor_routes
from billing.entrypoints.api.errors import add_error_handlers
from billing.entrypoints.api.health import add_health_route
from billing.entrypoints.api.payments import add_payment_routes
from billing.entrypoints.api.retornos import add_retorno_routes
from billing.payments.service import check_timezone

log = logging.getLogger(__name__)

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


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
        engine = _default_engine()
    _apply_migrations(engine, own_engine=own_engine)
    _warn_when_uploads_are_off(settings)
    app = FastAPI(
        title="Billing API",
        lifespan=_lifespan(dispose=engine if own_engine else None),
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    add_error_handlers(app)
    _add_routes(app.router, settings=settings, engine=engine)
    app.add_middleware(_MessagesInEnglish)
    return app


class _MessagesInEnglish:
    """The API answers in English whatever LANGUAGE says: its readers are the bank's and
    the fund's systems and the engineers who integrate them, and a message that changed
    with the dashboard's language would break whoever matches on it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with language_used("en"):  # copied into the threads that run the routes
            await self.app(scope, receive, send)


def _add_routes(router: APIRouter, *, settings: Settings, engine: Engine) -> None:
    """Every concern's routes, each with the app's settings and engine."""
    add_health_route(router, engine=engine)
    add_payment_routes(router, settings=settings, engine=engine)
    add_debtor_routes(router, settings=settings, engine=engine)
    add_retorno_routes(router, settings=settings, engine=engine)


def _default_engine() -> Engine:
    from db.engine import get_engine

    return get_engine()


def _apply_migrations(engine: Engine, *, own_engine: bool) -> None:
    """Pending migrations, through the migration role when the API owns its engine."""
    from db.migrations import migrate, migrate_database

    applied = migrate_database() if own_engine else migrate(engine)
    if applied:
        log.info("applied migrations: %s", ", ".join(applied))


def _warn_when_uploads_are_off(settings: Settings) -> None:
    if not settings.api_token:
        log.warning("API_TOKEN is not set: POST /debtors/upload answers 503")


def _lifespan(*, dispose: Engine | None) -> Lifespan:
    """The app's lifespan: on shutdown, close the engine it made itself (`dispose`)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if dispose is not None:
            dispose.dispose()

    return lifespan
