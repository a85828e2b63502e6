"""The built-in chat page: ``GET /`` and its assets under ``/ui/``.

Every file ships in the package (openai_frontend/ui) and is read once, so the page needs
no build step, no CDN and no network beyond this server. A strict Content-Security-Policy
(scripts, styles and fetches from this origin only; no inline code) means that even a
renderer bug could not run text a model wrote. ``--no-ui`` leaves this router out, and
then ``/`` is a 404 like any unknown path.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter, Request
from starlette.responses import Response

from openai_frontend.errors import APIError
from openai_frontend.state import get_state

router = APIRouter(include_in_schema=False)

MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The page is small; revalidating on every load means an upgrade shows at once.
    "Cache-Control": "no-cache",
}
#: The placeholder in index.html the server replaces with "required" or "none", so the
#: page asks for a key before its first request instead of after a 401.
API_KEY_PLACEHOLDER = "API_KEY_MODE"


@cache
def _assets() -> dict[str, tuple[bytes, str]]:
    """Name -> (bytes, media type) for every servable file of the package's ui folder."""
    folder = resources.files("openai_frontend") / "ui"
    return {
        entry.name: (entry.read_bytes(), MEDIA_TYPES[suffix])
        for entry in folder.iterdir()
        if entry.is_file() and (suffix := "." + entry.name.rpartition(".")[2]) in MEDIA_TYPES
    }


def _page(body: bytes, media_type: str) -> Response:
    return Response(body, media_type=media_type, headers=SECURITY_HEADERS)


@router.get("/")
async def index(request: Request) -> Response:
    mode = "required" if get_state(request).config.api_keys else "none"
    body, media_type = _assets()["index.html"]
    return _page(body.replace(API_KEY_PLACEHOLDER.encode(), mode.encode()), media_type)


@router.get("/ui/{name}")
async def asset(name: str) -> Response:
    found = _assets().get(name)
    if found is None or name == "index.html":
        raise APIError("Not found: no such route.", status=404)
    return _page(*found)
