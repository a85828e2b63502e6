"""``GET /v1/models`` and ``GET /v1/models/{model}``.

Cards carry vLLM's extra fields (root, parent, max_model_len) and still match the spec.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from engines.base import ModelInfo
from openai_frontend.errors import model_not_found
from openai_frontend.jsonresponse import json_response
from openai_frontend.state import ServerState, get_state

router = APIRouter()


def _cards(state: ServerState) -> list[dict]:
    """Each loaded model, then its adapters with ``parent`` set to it (vLLM's shape)."""
    cards = []
    for served in state.models:
        if not served.engine.is_ready():
            continue
        info = served.engine.model()
        cards.append(
            _card(info.id, info.created, info.owned_by, str(info.path or info.id), None, info)
        )
        adapters = served.registry.adapters() if served.registry is not None else []
        cards.extend(
            _card(a.name, info.created, info.owned_by, str(a.path), info.id, info) for a in adapters
        )
    return cards


def _card(
    model_id: str, created: int, owned_by: str, root: str, parent: str | None, info: ModelInfo
) -> dict:
    return {
        "id": model_id,
        "object": "model",
        "created": created,
        "owned_by": owned_by,
        "root": root,
        "parent": parent,
        "max_model_len": info.max_model_len,
    }


@router.get("/v1/models")
async def list_models(request: Request) -> Response:
    return json_response({"object": "list", "data": _cards(get_state(request))})


@router.get("/v1/models/{model:path}")
async def retrieve_model(model: str, request: Request) -> Response:
    for card in _cards(get_state(request)):
        if card["id"] == model:
            return json_response(card)
    raise model_not_found(model)
