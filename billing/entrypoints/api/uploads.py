"""What the two file uploads share: size limits, the multipart `file` field, the file's
own name, yes/no fields and the answer built from an import's result."""

from __future__ import annotations

from pathlib import PurePosixPath, PureWindowsPath
from typing import Any, Protocol

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import FormData, UploadFile

from billing.core.settings import Settings

MULTIPART_OVERHEAD = 1024 * 1024
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


class FileResult(Protocol):
    """What an import of a file reports (the debtor file's, a retorno's)."""

    @property
    def status(self) -> str: ...

    @property
    def error(self) -> str | None: ...

    def as_dict(self) -> dict[str, Any]: ...


def refuse_oversized_request(request: Request, *, limit: int, settings: Settings) -> None:
    """413 when the declared length is beyond `limit` plus the form's own overhead."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit + MULTIPART_OVERHEAD:
        raise HTTPException(413, too_large(settings))


def uploaded_file(form: FormData, *, missing: str) -> UploadFile:
    """The form's `file` field; 422 with `missing` when it holds no file."""
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise HTTPException(422, missing)
    return upload


def form_flag(value: object, name: str) -> bool:
    """A yes/no form field (absent: no); 422 for anything else."""
    if value is None:
        return False
    text_value = str(value).strip().lower() if isinstance(value, str) else None
    if text_value in _TRUE:
        return True
    if text_value in _FALSE:
        return False
    raise HTTPException(422, f"{name} must be true or false.")


def base_name(file_name: str | None) -> str:
    """The file's own name, without any folder a browser or client sent along."""
    return PureWindowsPath(PurePosixPath(file_name or "").name).name.strip()


def too_large(settings: Settings) -> str:
    return f"The file is larger than {settings.max_import_file_mb} MB (MAX_IMPORT_FILE_MB)."


def result_answer(result: FileResult) -> JSONResponse:
    """200 with the result; 422 with its reason as `detail` when the file was refused."""
    body = result.as_dict()
    if result.status == "refused":
        return JSONResponse({"detail": result.error, **body}, status_code=422)
    return JSONResponse(body)
