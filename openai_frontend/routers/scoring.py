"""``POST /v1/rerank`` (also ``/rerank``, ``/v2/rerank``) and ``POST /v1/score`` (also
``/score``): relevance of texts to a query, as vLLM serves them on an embedding model.

Rerank is the Cohere/Jina shape vLLM and llama-server accept (Cohere's SDK posts to
``/v1/rerank`` or ``/v2/rerank``); score is vLLM's ``text_1`` against ``text_2``. Both
answer from one engine batch (openai_frontend.scoring_run).
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from starlette.responses import Response

from openai_frontend.disconnect import cancel_on_disconnect
from openai_frontend.jsonbody import OffLoopJSONRoute
from openai_frontend.jsonresponse import json_response
from openai_frontend.schemas.scoring import RerankRequest, ScoreRequest, ScoringFields
from openai_frontend.scoring_run import Scores, Side, score_pairs
from openai_frontend.state import get_state, log_fields, new_id

router = APIRouter(route_class=OffLoopJSONRoute)


@router.post("/v1/rerank")
@router.post("/v2/rerank")
@router.post("/rerank")
async def rerank(body: RerankRequest, request: Request) -> Response:
    documents = body.texts()
    scored = await _scores(request, body, Side([body.query], "query"), Side(documents, "documents"))
    order = sorted(range(len(documents)), key=lambda index: -scored.scores[index])
    results = [
        {"index": index, "relevance_score": scored.scores[index]}
        | ({"document": {"text": documents[index]}} if body.return_documents else {})
        for index in order[: body.top_n or None]
    ]
    return json_response(
        {"id": new_id("rerank"), "model": body.model, "usage": _usage(scored), "results": results}
    )


@router.post("/v1/score")
@router.post("/score")
async def score(body: ScoreRequest, request: Request) -> Response:
    scored = await _scores(
        request, body, Side(body.firsts(), "text_1"), Side(body.seconds(), "text_2")
    )
    return json_response(
        {
            "id": new_id("score"),
            "object": "list",
            "created": int(time.time()),
            "model": body.model,
            "data": [
                {"index": index, "object": "score", "score": value}
                for index, value in enumerate(scored.scores)
            ],
            "usage": _usage(scored) | {"completion_tokens": 0},
        }
    )


async def _scores(request: Request, body: ScoringFields, first: Side, second: Side) -> Scores:
    state = get_state(request)
    target = state.model(body.model, task="embed")
    fields = log_fields(request)
    if state.config.log_prompts:
        fields["prompt"] = first.texts + second.texts
    return await cancel_on_disconnect(
        request, score_pairs(state, target, body, first, second, fields)
    )


def _usage(scored: Scores) -> dict:
    return {"prompt_tokens": scored.prompt_tokens, "total_tokens": scored.prompt_tokens}
