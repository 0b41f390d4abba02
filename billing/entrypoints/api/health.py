"""GET /health: {"status": "ok"} when the database answers, else 503."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from billing.entrypoints.api.errors import database_unavailable, first_line

log = logging.getLogger(__name__)


def add_health_route(router: APIRouter, *, engine: Engine) -> None:
    """GET /health on `router`."""

    @router.get("/health")
    def health() -> JSONResponse:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            log.warning("health check: the database does not answer (%s)", first_line(exc))
            return database_unavailable(
                {"status": "unavailable", "detail": "The database does not answer."}
            )
        return JSONResponse({"status": "ok"})
