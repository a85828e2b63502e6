"""VLLMEngine.generate sorts vLLM's real exceptions and finish reasons: only a dead
engine core is EngineDead; a failed generation or a full queue fails one request."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest

from engines.base import (
    Delta,
    EngineDead,
    EngineError,
    GenerateRequest,
    SamplingParams,
)
from engines.vllm import VLLMEngine

exceptions = pytest.importorskip("vllm.exceptions", reason="needs vllm installed")
engine_exceptions = pytest.importorskip("vllm.v1.engine.exceptions")


def _output(
    text: str, finish_reason: str | None, cached: int = 0, stop_reason: str | int | None = None
) -> SimpleNamespace:
    sequence = SimpleNamespace(
        text=text, token_ids=[1], finish_reason=finish_reason, stop_reason=stop_reason
    )
    return SimpleNamespace(
        outputs=[sequence], finished=finish_reason is not None, num_cached_tokens=cached
    )


@dataclass
class FaultInjectingAsyncLLM:
    """Stands in for vLLM's AsyncLLM: one token, then ``raises`` or ``finish_reason``."""

    raises: BaseException | None = None
    finish_reason: str = "stop"
    stop_reason: str | int | None = None
    aborted: list[str] = field(default_factory=list)
    #: What vLLM reports as ``RequestOutput.num_cached_tokens``.
    cached_tokens: int = 0
    #: The ``priority`` of every generate() call.
    priorities: list[int] = field(default_factory=list)

    async def generate(
        self, prompt, params, request_id, lora_request, priority=0, trace_headers=None
    ):
        self.priorities.append(priority)
        yield _output("a", None, self.cached_tokens)
        if self.raises is not None:
            raise self.raises
        yield _output("", self.finish_reason, self.cached_tokens, self.stop_reason)

    async def abort(self, request_id: str) -> None:
        self.aborted.append(request_id)


def _run(
    llm: FaultInjectingAsyncLLM, priority: int = 0
) -> tuple[list[Delta], BaseException | None]:
    engine = VLLMEngine(model_path=Path("/nonexistent"), served_model_name="m")
    engine._llm = llm
    request = GenerateRequest("r-0", [1, 2], SamplingParams(max_tokens=4, priority=priority))
    deltas: list[Delta] = []

    async def drain() -> None:
        async for delta in engine.generate(request):
            deltas.append(delta)

    try:
        asyncio.run(drain())
    except Exception as exc:
        return deltas, exc
    return deltas, None


@pytest.mark.parametrize(
    ("raised", "status"),
    [
        (lambda: engine_exceptions.EngineGenerateError(), 500),
        (lambda: exceptions.GenerationError(), 500),
        (lambda: exceptions.RetryableRequestError(), 503),
        (lambda: exceptions.QueueOverflowError(), 503),
        (lambda: exceptions.MaxQueuedTokensError(), 503),
    ],
    ids=["EngineGenerateError", "GenerationError", "Retryable", "QueueOverflow", "MaxQueued"],
)
def test_a_recoverable_failure_fails_the_request_only(raised, status):
    llm = FaultInjectingAsyncLLM(raises=raised())
    deltas, error = _run(llm)
    assert len(deltas) == 1
    assert isinstance(error, EngineError), repr(error)
    assert error.status == status
    assert error.message
    assert llm.aborted == ["r-0"], "the unfinished request is aborted in the engine"


def test_only_a_dead_engine_core_is_engine_dead():
    _, error = _run(FaultInjectingAsyncLLM(raises=engine_exceptions.EngineDeadError()))
    assert isinstance(error, EngineDead)


def test_finish_reason_error_is_a_500_not_a_finished_text():
    llm = FaultInjectingAsyncLLM(finish_reason="error")
    deltas, error = _run(llm)
    assert [d.text for d in deltas] == ["a"]
    assert isinstance(error, EngineError) and error.status == 500
    assert llm.aborted == [], "vLLM finished (and freed) the request itself"


def test_finish_reason_repetition_is_kept():
    deltas, error = _run(FaultInjectingAsyncLLM(finish_reason="repetition"))
    assert error is None
    assert deltas[-1].finish_reason == "repetition"


def test_num_cached_tokens_is_the_deltas_cached_prompt_tokens():
    deltas, error = _run(FaultInjectingAsyncLLM(cached_tokens=32))
    assert error is None
    assert [d.cached_prompt_tokens for d in deltas] == [32, 32]


def test_the_request_priority_reaches_vllms_generate():
    llm = FaultInjectingAsyncLLM()
    _run(llm, priority=-3)
    assert llm.priorities == [-3]


def test_priority_is_declared_only_under_the_priority_policy():
    def declared(**policy: str) -> frozenset[str]:
        return VLLMEngine(Path("/nonexistent"), "m", **policy).supported_sampling

    assert "priority" not in declared()
    assert "priority" in declared(scheduling_policy="priority")


@pytest.mark.parametrize(("stop_reason", "expected"), [("END", "END"), (7, None), (None, None)])
def test_only_a_matched_stop_string_is_the_stop_sequence(stop_reason, expected):
    deltas, error = _run(FaultInjectingAsyncLLM(stop_reason=stop_reason))
    assert error is None
    assert deltas[-1].stop_sequence == expected
    assert deltas[0].stop_sequence is None
