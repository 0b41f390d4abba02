"""POST /debtors/upload: the dashboard's import of a debtor file, behind the API token;
the form field `mapping` names a saved column mapping for a file from another system."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from billing.accounts.access import API_ACTOR
from billing.core.errors import OperatorError
from billing.core.settings import Settings
from billing.entrypoints.api.auth import check_token
from billing.entrypoints.api.uploads import (
    base_name,
    form_flag,
    refuse_oversized_request,
    result_answer,
    too_large,
    uploaded_file,
)
from billing.imports.mapping import mapping_named
from billing.imports.service import import_file


def add_debtor_routes(router: APIRouter, *, settings: Settings, engine: Engine) -> None:
    """POST /debtors/upload on `router`."""

    @router.post("/debtors/upload")
    async def upload_debtors(request: Request) -> JSONResponse:
        check_token(request, settings)
        limit = settings.max_import_file_bytes
        refuse_oversized_request(request, limit=limit, settings=settings)
        # The form spools the file to disk past 1 MB; the import reads it a piece at a time.
        async with request.form(max_files=1, max_fields=10) as form:
            upload = uploaded_file(
                form, missing="Send the debtor file as the multipart form field 'file'."
            )
            lenient = form_flag(form.get("lenient_documents"), "lenient_documents")
            file_name = base_name(upload.filename) or "upload.csv"
            if (upload.size or 0) > limit:
                raise HTTPException(413, too_large(settings))
            columns, mapping_name = await run_in_threadpool(_mapping, form.get("mapping"))
            result = await run_in_threadpool(
                lambda: import_file(
                    engine=engine,
                    actor=API_ACTOR,
                    source=upload.file,
                    file_name=file_name,
                    lenient_documents=lenient,
                    settings=settings,
                    mapping=columns,
                    mapping_name=mapping_name,
                )
            )
        return result_answer(result)

    def _mapping(name: object) -> tuple[dict[str, str] | None, str | None]:
        """The form's `mapping`: a column mapping saved under that name (Upload page), its
        columns and name; none when absent; 422 naming the saved ones when unknown."""
        if name is None or (isinstance(name, str) and not name.strip()):
            return None, None
        if not isinstance(name, str):
            raise HTTPException(422, "mapping must be the name of a saved column mapping.")
        try:
            saved = mapping_named(engine, name)
        except OperatorError as unknown:
            raise HTTPException(422, unknown.message) from None
        return saved["columns"], saved["name"]
