"""How the API answers what went wrong: an operator's mistake as its sentence, a database
out of reach as 503 with Retry-After, anything else as a 500 with the traceback logged."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import cast

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from billing.core.errors import OperatorError
from billing.payments.service import InvalidPayment, NotFound, UnreadableBody

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5  # what a 503 asks a client to wait before trying again
UNAVAILABLE = "The database is unavailable; nothing was recorded. Try again in a moment."

# Registered for OperatorError and its kinds only: Starlette types every handler for Exception.
ErrorHandler = Callable[[Request, Exception], Awaitable[JSONResponse]]


def add_error_handlers(app: FastAPI) -> None:
    """Operator errors by their kind (400, 422, 404, else 409), the database's, the rest."""
    app.add_exception_handler(UnreadableBody, _operator_error_answer(400))
    app.add_exception_handler(InvalidPayment, _operator_error_answer(422))
    app.add_exception_handler(NotFound, _operator_error_answer(404))
    app.add_exception_handler(OperatorError, _operator_error_answer(409))
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(PoolTimeout, _database_error)
    app.add_exception_handler(Exception, _unexpected_error)


def database_unreachable(exc: BaseException) -> bool:
    """Whether `exc` means the database cannot be reached now (a 503 to retry), rather than
    a bug (a 500): no connection, one dropped mid-request, the server shutting down or
    starting up, or no pooled connection free in time."""
    if isinstance(exc, PoolTimeout):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError)


def database_unavailable(detail: dict[str, str]) -> JSONResponse:
    """A 503 with `detail` that asks the client to try again in RETRY_AFTER_SECONDS."""
    return JSONResponse(detail, status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text (its type's name when it has none)."""
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def _operator_error_answer(status: int) -> ErrorHandler:
    async def handler(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": cast(OperatorError, exc).message}, status_code=status)

    return handler


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    if not database_unreachable(exc):
        raise exc  # a bug: on to the 500 below, and its traceback in the log
    log.warning(
        "%s %s: the database does not answer (%s)",
        request.method,
        request.url.path,
        first_line(exc),
    )
    return database_unavailable({"detail": UNAVAILABLE})


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # Starlette raises the exception again after this answer: the server logs it
    # with its traceback, once.
    log.error("%s %s failed: %s", request.method, request.url.path, type(exc).__name__)
    return JSONResponse(
        {"detail": "Internal error; the details are in the server's log."},
        status_code=500,
    )
