"""POST /bank/retornos: a CNAB 240 retorno from the bank, behind the API token."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from billing.accounts.access import API_ACTOR
from billing.core.settings import Settings
from billing.entrypoints.api.auth import check_token
from billing.entrypoints.api.uploads import (
    base_name,
    refuse_oversized_request,
    result_answer,
    too_large,
    uploaded_file,
)


def add_retorno_routes(router: APIRouter, *, settings: Settings, engine: Engine) -> None:
    """POST /bank/retornos on `router`."""

    @router.post("/bank/retornos")
    async def upload_retorno(request: Request) -> JSONResponse:
        from billing.cnab.service import import_retorno

        check_token(request, settings)
        limit = settings.max_file_bytes
        refuse_oversized_request(request, limit=limit, settings=settings)
        async with request.form(max_files=1, max_fields=10) as form:
            upload = uploaded_file(
                form, missing="Send the retorno as the multipart form field 'file'."
            )
            data = await upload.read(limit + 1)
            file_name = base_name(upload.filename) or "retorno.ret"
        if len(data) > limit:
            raise HTTPException(413, too_large(settings))
        result = await run_in_threadpool(
            lambda: import_retorno(
                engine, actor=API_ACTOR, data=data, file_name=file_name, settings=settings
            )
        )
        return result_answer(result)
