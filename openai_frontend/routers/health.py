"""Liveness, readiness and Prometheus metrics.

``/health/ready`` also reports how many requests the engine itself still holds, and
which LoRA adapters it has loaded: that is how tests observe, in the engine and not on
the socket, that a disconnect aborted a request and that an unload freed a slot.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from openai_frontend.jsonresponse import json_response
from openai_frontend.state import get_state
from openai_frontend.streaming import is_shutting_down

router = APIRouter()


@router.get("/health")
async def health() -> Response:
    return json_response({"status": "ok"})


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus text format."""
    body = get_state(request).metrics.render()
    return Response(body, media_type=CONTENT_TYPE_LATEST)


@router.get("/health/ready")
async def ready(request: Request) -> Response:
    state = get_state(request)
    engine = state.engine
    if state.engine_failed:
        return json_response({"status": "engine failed"}, status=503)
    if is_shutting_down():
        return json_response({"status": "draining"}, status=503)
    if not engine.is_ready():
        return json_response({"status": "loading"}, status=503)
    return json_response(
        {
            "status": "ready",
            "engine_unfinished_requests": engine.num_unfinished_requests(),
            "engine_adapter_ids": await engine.loaded_adapter_ids(),
        }
    )
