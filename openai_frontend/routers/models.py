"""``GET /v1/models`` and ``GET /v1/models/{model}``.

Cards carry vLLM's extra fields (root, parent, max_model_len) and still match the spec.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from openai_frontend.errors import model_not_found
from openai_frontend.jsonresponse import json_response
from openai_frontend.state import ServerState, get_state

router = APIRouter()


def _cards(state: ServerState) -> list[dict]:
    if not state.engine.is_ready():
        return []
    info = state.engine.model()
    return [
        {
            "id": info.id,
            "object": "model",
            "created": info.created,
            "owned_by": info.owned_by,
            "root": str(info.path) if info.path else info.id,
            "parent": None,
            "max_model_len": info.max_model_len,
        }
    ]


@router.get("/v1/models")
async def list_models(request: Request) -> Response:
    return json_response({"object": "list", "data": _cards(get_state(request))})


@router.get("/v1/models/{model:path}")
async def retrieve_model(model: str, request: Request) -> Response:
    for card in _cards(get_state(request)):
        if card["id"] == model:
            return json_response(card)
    raise model_not_found(model)
