"""Run-time LoRA management: ``POST /v1/load_lora_adapter`` and ``/v1/unload_lora_adapter``.

Mounted only with ``--enable-lora-management``; every call needs the admin key, never a
user key. Paths must resolve (symlinks followed) inside a ``--lora-root``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from lora.peft_folder import AdapterError
from lora.registry import AdapterConflict, AdapterNotFound
from openai_frontend.auth import require_key
from openai_frontend.errors import APIError
from openai_frontend.jsonbody import OffLoopJSONRoute
from openai_frontend.jsonresponse import json_response
from openai_frontend.schemas.common import StrictModel
from openai_frontend.state import ServedModel, get_state

router = APIRouter(route_class=OffLoopJSONRoute)


class LoadAdapter(StrictModel):
    lora_name: str
    lora_path: str


class UnloadAdapter(StrictModel):
    lora_name: str
    lora_int_id: int | None = None


def _lora_model(request: Request) -> ServedModel:
    """The model whose adapters these endpoints manage: the first with LoRA enabled."""
    state = get_state(request)
    require_key(request, state.config.admin_api_key or "", "admin")
    served = state.lora_model
    if served is None or not served.is_ready():
        raise APIError("The engine is still loading; retry shortly.", status=503)
    return served


@router.post("/v1/load_lora_adapter")
async def load_adapter(body: LoadAdapter, request: Request) -> Response:
    served = _lora_model(request)
    registry = served.registry
    known = registry.lookup(body.lora_name)
    try:
        adapter = registry.declare_confined(body.lora_name, body.lora_path)
    except AdapterConflict as exc:
        raise APIError(str(exc), status=409, param="lora_name") from None
    except AdapterError as exc:
        raise APIError(str(exc), param="lora_path") from None
    if known is None:
        try:
            await served.engine.add_adapter(adapter)
        except Exception as exc:
            await registry.unload(adapter.name)
            raise APIError(str(exc), param="lora_path") from None
    return json_response(
        {"object": "lora_adapter", "id": adapter.name, "lora_int_id": adapter.int_id}
    )


@router.post("/v1/unload_lora_adapter")
async def unload_adapter(body: UnloadAdapter, request: Request) -> Response:
    served = _lora_model(request)
    try:
        adapter = await served.registry.unload(body.lora_name)
    except AdapterNotFound as exc:
        raise APIError(str(exc), status=404, param="lora_name", code="model_not_found") from None
    return json_response({"object": "lora_adapter", "id": adapter.name, "deleted": True})
