"""``GET /v1/models`` and ``GET /v1/models/{model}``.

Cards carry vLLM's extra fields (root, parent, max_model_len) and still match the spec.
OpenAI's Model has no field that says what a model does; ours add ``task``: "generate"
(chat and completions) or "embed" (``/v1/embeddings``), the ``--task`` it is served with.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from engines.base import DEFAULT_OWNER
from openai_frontend.errors import model_not_found
from openai_frontend.jsonresponse import json_response
from openai_frontend.state import ServedModel, ServerState, get_state

router = APIRouter()


def _cards(state: ServerState) -> list[dict]:
    """Every configured model, then its adapters with ``parent`` set to it (vLLM's shape).

    Listed from the moment the server listens, loaded or not: a client that polls
    ``/v1/models`` while the engine loads must not conclude that the model does not
    exist (generation answers 503 with ``Retry-After`` until it is ready). ``root`` is
    the served name, never a filesystem path: paths are the operator's business.
    """
    cards = []
    for served in state.models:
        facts = _facts(served)
        cards.append({"id": served.name, "root": served.name, "parent": None, **facts})
        adapters = served.registry.adapters() if served.registry is not None else []
        cards.extend(
            {"id": a.name, "root": a.name, "parent": served.name, **facts} for a in adapters
        )
    return cards


def _facts(served: ServedModel) -> dict:
    """What a model and its adapters' cards share; the engine's figures once it loaded."""
    facts = {
        "object": "model",
        "created": served.created,
        "owned_by": DEFAULT_OWNER,  # until loaded
        "task": served.task,
    }
    if served.is_ready():
        info = served.engine.model()
        facts.update(owned_by=info.owned_by, max_model_len=info.max_model_len)
    elif served.config.max_model_len is not None:
        facts["max_model_len"] = served.config.max_model_len
    return facts


@router.get("/v1/models")
async def list_models(request: Request) -> Response:
    return json_response({"object": "list", "data": _cards(get_state(request))})


@router.get("/v1/models/{model:path}")
async def retrieve_model(model: str, request: Request) -> Response:
    for card in _cards(get_state(request)):
        if card["id"] == model:
            return json_response(card)
    raise model_not_found(model)
