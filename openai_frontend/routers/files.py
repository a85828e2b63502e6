"""``/v1/files``: the JSONL input of a batch, and the output and error files it writes.

Only ``purpose: "batch"`` is accepted (nothing else here reads files); the upload is
bounded by ``--max-request-bytes`` like every body, and all files together by
``--responses-max-bytes`` (an upload past it is refused, no file is deleted for it).
Files belong to the key that uploaded them (another key gets a 404) and live in the
response store's SQLite file.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable
from typing import Any, TypeVar

from fastapi import APIRouter, Form, Query, Request, UploadFile
from starlette.responses import Response

from openai_frontend.batch.store import BatchStore, FilesFull, StoredFile
from openai_frontend.errors import APIError
from openai_frontend.jsonresponse import json_response
from openai_frontend.responses.store import StoreUnavailable
from openai_frontend.routers.responses import request_owner, unavailable

router = APIRouter()
T = TypeVar("T")


def batch_store(request: Request) -> BatchStore:
    """The store files and batches live in; a 400 when the server keeps none."""
    store = getattr(request.app.state, "batch_store", None)
    if store is None:
        raise APIError(
            "This server keeps no files or batches (--response-store none).",
            code="store_disabled",
        )
    return store


async def stored(call: Awaitable[T]) -> T:
    """``call``, with a store that cannot answer as a 503 (retry)."""
    try:
        return await call
    except StoreUnavailable as error:
        raise unavailable(error) from None


def file_not_found(file_id: str, param: str | None = None) -> APIError:
    return APIError(f"No such File object: {file_id}", status=404, param=param, code="not_found")


@router.post("/v1/files")
async def create_file(request: Request, file: UploadFile, purpose: str = Form(...)) -> Response:
    if purpose != "batch":
        raise APIError(
            f"purpose '{purpose}' is not supported here: only 'batch' (the Batch API's "
            "JSONL input) is.",
            param="purpose",
        )
    content = await file.read()
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        raise APIError("The file must be UTF-8 JSONL text.", param="file") from None
    if not content.strip():
        raise APIError("The file is empty.", param="file")
    record = StoredFile(
        f"file-{uuid.uuid4().hex}",
        int(time.time()),
        file.filename or "upload.jsonl",
        purpose,
        len(content),
    )
    try:
        await stored(batch_store(request).save_file(request_owner(request), record, content))
    except FilesFull as full:
        raise APIError(
            f"The server's file storage is full ({full}): delete files, then upload again.",
            param="file",
            code="storage_full",
        ) from None
    return json_response(record.body())


@router.get("/v1/files")
async def list_files(
    request: Request,
    purpose: str | None = None,
    after: str | None = None,
    limit: int = Query(10000, ge=1, le=10000),
) -> Response:
    store = batch_store(request)
    files, more = await stored(store.list_files(request_owner(request), purpose, after, limit))
    return json_response(_page([file.body() for file in files], more))


def _page(data: list[dict[str, Any]], more: bool) -> dict[str, Any]:
    """OpenAI's cursor page: ``after`` = ``last_id`` reads the next one."""
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": more,
    }


@router.get("/v1/files/{file_id}")
async def retrieve_file(file_id: str, request: Request) -> Response:
    found = await stored(batch_store(request).get_file(request_owner(request), file_id))
    if found is None:
        raise file_not_found(file_id)
    return json_response(found.body())


@router.get("/v1/files/{file_id}/content")
async def file_content(file_id: str, request: Request) -> Response:
    content = await stored(batch_store(request).file_content(request_owner(request), file_id))
    if content is None:
        raise file_not_found(file_id)
    return Response(content, media_type="application/jsonl")


@router.delete("/v1/files/{file_id}")
async def delete_file(file_id: str, request: Request) -> Response:
    deleted = await stored(batch_store(request).delete_file(request_owner(request), file_id))
    if not deleted:
        raise file_not_found(file_id)
    return json_response({"id": file_id, "object": "file", "deleted": True})
