"""The mixed-batch LoRA workaround, through real servers with their own flags.

pirate says "Ahoy matey!", robot says "BEEP BOOP ROBOT.", french "Bonjour mon ami!"
(scripts/demo_adapters.py). With ``--max-loras 2`` and no workaround the two adapters
fill every slot, so robot sits in the last one: the slot a base token's index -1 reads
on a build with the bug (engines/vllm_lora_probe.py). With the workaround that slot
holds the zero adapter (pinned), or base requests run through it (on).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from demo_adapters import PHRASES, ensure_adapter
from servers import Running, ours, wait_ready

from engines.vllm import apply_cpu_defaults, is_cpu_build
from openai_frontend.default_model import MODEL_NAME, ensure_default_model

pytestmark = pytest.mark.engine

ADAPTERS = ("pirate", "robot")
ALL_ADAPTERS = (*ADAPTERS, "french")
PROMPTS = ["What is the capital of France?", "Tell me a story.", "Name a colour."]


def _start(tmp_path: Path, *flags: str) -> Running:
    server = ours(
        ensure_default_model(),
        tmp_path / "server.log",
        *("--served-model-name", MODEL_NAME),
        *flags,
    )
    try:
        wait_ready(server)
    except Exception:
        server.stop()
        raise
    return server


def _with_two_adapters(tmp_path: Path, *flags: str, adapters=ADAPTERS) -> Running:
    lora = [f"--lora={name}={ensure_adapter(name)}" for name in adapters]
    return _start(tmp_path, *lora, "--max-loras", "2", *flags)


async def _chat(client: httpx.AsyncClient, model: str, prompt: str) -> str:
    response = await client.post(
        "/v1/chat/completions",
        json={
            "model": model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": 0,
            "max_tokens": 16,
        },
    )
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["message"]["content"]


def _mixed_batches(server: Running, adapters=ADAPTERS) -> list[tuple[str, str]]:
    """(model, answer) of base requests sent together with the adapters' requests, after
    each adapter took a slot in turn (pirate first, so robot holds the last slot when
    there are two)."""

    async def scenario() -> list[tuple[str, str]]:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=120) as client:
            for name in adapters:
                assert await _chat(client, name, PROMPTS[0]) == PHRASES[name]
            jobs = [(m, p) for p in PROMPTS for m in (MODEL_NAME, *adapters)]
            texts = await asyncio.gather(*(_chat(client, m, p) for m, p in jobs))
        return [(model, text) for (model, _), text in zip(jobs, texts, strict=True)]

    return asyncio.run(scenario())


def _base_texts_in_mixed_batches(server: Running) -> list[str]:
    return [text for model, text in _mixed_batches(server) if model == MODEL_NAME]


def _adapter_phrases_in(texts: list[str]) -> list[str]:
    return [text for text in texts if any(PHRASES[name] in text for name in ALL_ADAPTERS)]


def test_base_request_in_a_mixed_batch_holds_no_adapter_phrase(tmp_path: Path):
    """The default (auto) start-up: whatever the build, base answers stay the base's."""
    server = _with_two_adapters(tmp_path)
    try:
        base_texts = _base_texts_in_mixed_batches(server)
    finally:
        server.stop()
    assert len(base_texts) == len(PROMPTS)
    assert _adapter_phrases_in(base_texts) == []


@pytest.mark.skipif(not is_cpu_build(), reason="the self-check probes the CPU build's kernels")
def test_self_check_agrees_with_the_engine_without_the_workaround(tmp_path: Path):
    """With the workaround off, base answers carry an adapter's phrase exactly when the
    start-up self-check says the kernels leak (so the test above can fail, and auto
    applies the workaround where, and only where, it is needed)."""
    apply_cpu_defaults()  # the probe imports vLLM, which reads these; the server would too
    from engines.vllm_lora_probe import base_tokens_get_an_adapter

    leaks = base_tokens_get_an_adapter()
    assert leaks is not None, "the self-check could not run on this vLLM"
    server = _with_two_adapters(tmp_path, "--base-via-zero-lora", "off")
    try:
        base_texts = _base_texts_in_mixed_batches(server)
    finally:
        server.stop()
    assert bool(_adapter_phrases_in(base_texts)) is leaks, base_texts


def test_pinned_zero_adapter_with_more_adapters_than_slots(tmp_path: Path):
    """``pinned``, three adapters for two ``--max-loras``: the zero adapter holds the
    engine's extra slot, so vLLM's scheduler must keep to two adapters a batch (one
    more would evict an adapter its batch is using); every answer stays its own."""
    server = _with_two_adapters(tmp_path, "--base-via-zero-lora", "pinned", adapters=ALL_ADAPTERS)
    try:
        answers = _mixed_batches(server, ALL_ADAPTERS)
    finally:
        server.stop()
    base_texts = [text for model, text in answers if model == MODEL_NAME]
    assert len(base_texts) == len(PROMPTS)
    assert _adapter_phrases_in(base_texts) == []
    assert all(text == PHRASES[model] for model, text in answers if model != MODEL_NAME)
    # pinned for real, not the fallback to on (engines/vllm.py, _prepare_lora_workers)
    assert "landed in slot" not in (tmp_path / "server.log").read_text()


def test_zero_adapter_fits_max_lora_rank_1_with_management_only(tmp_path: Path):
    """No adapter at start, ``--max-lora-rank 1``, workaround forced on: base requests work."""
    root = tmp_path / "lora-root"
    root.mkdir()
    server = _start(
        tmp_path,
        *("--base-via-zero-lora", "on", "--max-lora-rank", "1"),
        *("--enable-lora-management", "--admin-api-key", "k", "--lora-root", str(root)),
    )

    async def ask() -> str:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=120) as client:
            return await _chat(client, MODEL_NAME, PROMPTS[0])

    try:
        assert asyncio.run(ask())
    finally:
        server.stop()
