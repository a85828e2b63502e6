"""``/v1/batches``: OpenAI's Batch API over this server's own endpoints.

A create checks the request and stores the batch as ``validating``; the runner
(``openai_frontend/batch/runner.py``) does the rest in the background. Batches belong
to the key that created them (another key gets a 404), like files and stored responses.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

from openai_frontend.batch.lines import ENDPOINTS
from openai_frontend.batch.runner import BatchRunner
from openai_frontend.errors import APIError
from openai_frontend.jsonresponse import json_response
from openai_frontend.routers.files import _page, batch_store, file_not_found, stored
from openai_frontend.routers.responses import request_owner

router = APIRouter()

#: The only window OpenAI offers; a batch not done by then ends ``expired``.
WINDOW_S = 24 * 3600


class CreateBatchRequest(BaseModel):
    """OpenAI's ``CreateBatchRequest``: unknown fields are a 400 naming them."""

    model_config = ConfigDict(extra="forbid")

    input_file_id: str
    endpoint: str
    completion_window: str
    metadata: dict[str, str] | None = None
    output_expires_after: dict[str, Any] | None = None


def batch_runner(request: Request) -> BatchRunner:
    return request.app.state.batch_runner


def batch_not_found(batch_id: str) -> APIError:
    return APIError(f"No such Batch object: {batch_id}", status=404, code="not_found")


@router.post("/v1/batches")
async def create_batch(body: CreateBatchRequest, request: Request) -> Response:
    if body.endpoint not in ENDPOINTS:
        raise APIError(
            f"endpoint '{body.endpoint}' is not supported; use one of {', '.join(ENDPOINTS)}.",
            param="endpoint",
        )
    if body.completion_window != "24h":
        raise APIError(
            f"completion_window '{body.completion_window}' is not supported; use '24h'.",
            param="completion_window",
        )
    if body.metadata is not None and len(body.metadata) > 16:
        raise APIError("metadata may hold at most 16 pairs.", param="metadata")
    store, owner = batch_store(request), request_owner(request)
    found = await stored(store.get_file(owner, body.input_file_id))
    if found is None:
        raise file_not_found(body.input_file_id, "input_file_id")
    if found.purpose != "batch":
        raise APIError(
            f"File '{body.input_file_id}' has purpose '{found.purpose}', not 'batch'.",
            param="input_file_id",
        )
    now = int(time.time())
    batch = {
        "id": f"batch_{uuid.uuid4().hex}",
        "object": "batch",
        "endpoint": body.endpoint,
        "errors": None,
        "input_file_id": body.input_file_id,
        "completion_window": body.completion_window,
        "status": "validating",
        "output_file_id": None,
        "error_file_id": None,
        "created_at": now,
        "in_progress_at": None,
        "expires_at": now + WINDOW_S,
        "finalizing_at": None,
        "completed_at": None,
        "failed_at": None,
        "expired_at": None,
        "cancelling_at": None,
        "cancelled_at": None,
        "metadata": body.metadata,
    }
    batch = {key: value for key, value in batch.items() if value is not None}  # as the spec
    await stored(store.create_batch(owner, batch))
    batch_runner(request).start(owner, batch["id"])
    return json_response({**batch, "request_counts": {"total": 0, "completed": 0, "failed": 0}})


@router.get("/v1/batches")
async def list_batches(
    request: Request,
    after: str | None = None,
    limit: int = Query(20, ge=1, le=100),
) -> Response:
    store = batch_store(request)
    batches, more = await stored(store.list_batches(request_owner(request), after, limit))
    return json_response(_page(batches, more))


@router.get("/v1/batches/{batch_id}")
async def retrieve_batch(batch_id: str, request: Request) -> Response:
    batch = await stored(batch_store(request).get_batch(request_owner(request), batch_id))
    if batch is None:
        raise batch_not_found(batch_id)
    return json_response(batch)


@router.post("/v1/batches/{batch_id}/cancel")
async def cancel_batch(batch_id: str, request: Request) -> Response:
    batch = await stored(batch_store(request).cancel_batch(request_owner(request), batch_id))
    if batch is None:
        raise batch_not_found(batch_id)
    if batch["status"] == "cancelling":
        batch_runner(request).cancel(batch_id)
    return json_response(batch)
