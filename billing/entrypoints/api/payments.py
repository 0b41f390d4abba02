"""POST /webhooks/payments: the bank's signed payment notification, recorded once."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from billing.accounts.access import WEBHOOK_ACTOR
from billing.core.settings import Settings
from billing.entrypoints.api.auth import check_signature
from billing.payments.service import (
    PaymentNotification,
    PaymentOutcome,
    read_payment_notification,
    record_payment,
)

MAX_WEBHOOK_BYTES = 64 * 1024


def add_payment_routes(router: APIRouter, *, settings: Settings, engine: Engine) -> None:
    """POST /webhooks/payments on `router`."""

    @router.post("/webhooks/payments")
    async def payment_webhook(request: Request) -> JSONResponse:
        body = await read_body(request, limit=MAX_WEBHOOK_BYTES)
        check_signature(body, request.headers.get("x-signature"), settings.webhook_secret)
        notification = read_payment_notification(body, timezone=settings.timezone)
        outcome = await run_in_threadpool(
            lambda: _record_notification(engine, notification, settings=settings)
        )
        return JSONResponse(outcome.as_json())


async def read_body(request: Request, *, limit: int) -> bytes:
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


def _record_notification(
    engine: Engine, notification: PaymentNotification, *, settings: Settings
) -> PaymentOutcome:
    return record_payment(
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
