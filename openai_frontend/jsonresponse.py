"""JSON responses encoded once with orjson (fast, and NaN-free by construction).

orjson refuses a string holding a lone UTF-16 surrogate (``"\\ud800"`` is legal JSON,
so a client can send one and an error message may quote it back): such a body is
encoded by the standard library instead, which escapes it, rather than becoming a 500.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import orjson
from starlette.responses import Response


def json_response(
    body: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        _encode(body), status_code=status, headers=headers, media_type="application/json"
    )


def _encode(body: object) -> bytes:
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError:
        return json.dumps(body, allow_nan=False).encode()
