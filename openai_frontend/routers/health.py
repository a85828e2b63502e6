"""Liveness, readiness and Prometheus metrics.

``/health/ready`` answers anyone with its status code and ``{"status": ...}`` only: a
load balancer needs no more, and the details name upstream URLs and their error texts.
With the admin key it also reports how many requests the engine itself still holds,
which LoRA adapters it has loaded and, for a remote model, each upstream's state: that
is how operators see why a model is not ready, and how tests observe, in the engine and
not on the socket, that a disconnect aborted a request and that an unload freed a slot.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from openai_frontend.auth import carries_key
from openai_frontend.errors import error_body
from openai_frontend.jsonresponse import json_response
from openai_frontend.state import ServedModel, get_state
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
async def ready(request: Request, model: str | None = None) -> Response:
    """Ready when every model's engine is; ``?model=NAME`` asks about one model (or an
    adapter of it) and answers 404 for a name this server does not serve."""
    state = get_state(request)
    models = state.models
    if model is not None:
        found = state.find(model)
        if found is None:
            return json_response(
                error_body(
                    f"The model '{model}' does not exist.",
                    "invalid_request_error",
                    "model",
                    "model_not_found",
                ),
                status=404,
            )
        models = [found[0]]
    if state.engine_failed:
        return json_response({"status": "engine failed"}, status=503)
    if is_shutting_down():
        return json_response({"status": "draining"}, status=503)
    loading = not all(served.is_ready() for served in models)
    body = {"status": "loading" if loading else "ready"}
    if carries_key(request, state.config.admin_api_key):
        reports = {served.name: await _report(served) for served in models}
        first = next(iter(reports.values()))
        # The single-model shape, kept at the top level: the first model's figures.
        body.update({k: v for k, v in first.items() if k != "status"}, models=reports)
    return json_response(body, status=503 if loading else 200)


async def _report(served: ServedModel) -> dict:
    engine = served.engine
    if not served.is_ready():
        report = {"status": "loading"}
    else:
        report = {
            "status": "ready",
            "engine_unfinished_requests": engine.num_unfinished_requests(),
            "engine_adapter_ids": await engine.loaded_adapter_ids(),
        }
    if hasattr(engine, "upstream_status"):  # the remote engine's view of its upstreams
        report["upstreams"] = engine.upstream_status()
    return report
