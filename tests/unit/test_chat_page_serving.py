"""How the chat page is served (no browser, no engine): its headers, its assets, the
key hint, ``--no-ui``, and static guards on what the page's files may contain.

The page's behaviour in a browser is tests/test_chat_page.py.
"""

from __future__ import annotations

import asyncio
import re
from importlib import resources

import pytest
from fault_engines import FaultInjectingEngine, in_process_client

from openai_frontend.cli import build_parser

UI = resources.files("openai_frontend") / "ui"
FILES = {entry.name: entry.read_text() for entry in UI.iterdir() if entry.is_file()}
#: DOM sinks that parse HTML: the page must build nodes and set textContent instead.
HTML_SINKS = ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "DOMParser")


def _get_all(paths: list[str], **config: object) -> list:
    async def get() -> list:
        async with in_process_client(FaultInjectingEngine(), **config) as client:
            return [await client.get(path) for path in paths]

    return asyncio.run(get())


def _referenced_assets() -> list[str]:
    return re.findall(r'(?:src|href)="(/ui/[^"]+)"', FILES["index.html"])


def test_the_page_and_its_assets_are_served_with_a_strict_policy():
    paths = ["/", *_referenced_assets()]
    assert len(paths) >= 4
    responses = _get_all(paths)
    for path, response in zip(paths, responses, strict=True):
        assert response.status_code == 200, path
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert response.headers["x-content-type-options"] == "nosniff"
    kinds = {
        p.rpartition(".")[2]: r.headers["content-type"]
        for p, r in zip(paths, responses, strict=True)
    }
    assert kinds["js"].startswith("text/javascript") and kinds["css"].startswith("text/css")


def test_every_module_the_page_imports_is_served():
    imported = {
        "/ui/" + name for text in FILES.values() for name in re.findall(r'from "\./([\w.]+)"', text)
    }
    assert imported
    assert all(r.status_code == 200 for r in _get_all(sorted(imported)))


def test_the_page_says_whether_the_server_needs_a_key():
    (with_key,) = _get_all(["/"], api_keys=("k",))
    (without,) = _get_all(["/"])
    assert '<meta name="api-key" content="required">' in with_key.text
    assert '<meta name="api-key" content="none">' in without.text


def test_no_ui_makes_the_page_a_404_in_openais_shape():
    for response in _get_all(["/", "/ui/app.js"], ui=False):
        assert response.status_code == 404
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert build_parser().parse_args(["serve"]).ui is True
    assert build_parser().parse_args(["serve", "--no-ui"]).ui is False


@pytest.mark.parametrize("path", ["/ui/nothing.js", "/ui/index.html", "/ui/..%2Fapp.py"])
def test_only_the_packaged_assets_are_served(path: str):
    (response,) = _get_all([path])
    assert response.status_code == 404


def test_the_page_is_small_and_self_contained():
    assert sum(len(text.encode()) for text in FILES.values()) < 100_000
    html = FILES["index.html"]
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []  # no inline script
    assert not re.search(r"\s(on\w+|style)=", html)  # no inline handlers or styles
    for name, text in FILES.items():
        assert not re.search(r"""(src|href|url|fetch)\W+["'(]?https?:""", text), name
        if name.endswith(".js"):
            assert [sink for sink in HTML_SINKS if sink in text] == [], name
