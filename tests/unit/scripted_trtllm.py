"""``ScriptedTensorRTLLM``: a stand-in for the ``tensorrt_llm`` package, for unit tests only.

TensorRT-LLM cannot be installed here, so tests of what ``engines/trtllm.py`` does with
it (what it passes, how it reads results, errors and aborts) run against this scripted
copy of the few names it uses. Every class accepts exactly the keyword names read from
TensorRT-LLM's source into tests/fixtures/trtllm_api.json and raises ``TypeError`` on any
other, like the real dataclasses and ``LlmArgs`` (extra="forbid"). Results follow
``tensorrt_llm/executor/result.py``: a result is ``finished`` only once its final output
has been read, an abort is only a request to the executor, and iterating on after an
abort reads the final "cancelled" output. Nothing here claims TensorRT-LLM's numbers.
"""

from __future__ import annotations

import asyncio
import json
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "trtllm_api.json"
API = json.loads(FIXTURE.read_text(encoding="utf-8"))["apis"]


def accepted(*apis: str) -> set[str]:
    """Keyword names the named TensorRT-LLM APIs accept, per the fixture."""
    return set().union(*(API[name]["names"] for name in apis))


def unknown(kwargs: dict, *apis: str) -> set[str]:
    return set(kwargs) - accepted(*apis)


def _check(kwargs: dict, *apis: str) -> None:
    wrong = unknown(kwargs, *apis)
    if wrong:
        raise TypeError(f"{apis[0]} got unexpected keyword(s) {sorted(wrong)}")


class RequestError(RuntimeError):
    """``tensorrt_llm.executor.RequestError``: one request failed, the LLM serves on."""


class SamplingParams(SimpleNamespace):
    def __init__(self, **kwargs) -> None:
        _check(kwargs, "SamplingParams")
        super().__init__(**kwargs)


class GuidedDecodingParams(SimpleNamespace):
    def __init__(self, **kwargs) -> None:
        _check(kwargs, "GuidedDecodingParams")
        super().__init__(**kwargs)


class LoRARequest(SimpleNamespace):
    def __init__(self, *args, **kwargs) -> None:
        kwargs.update(zip(API["LoRARequest"]["names"], args, strict=False))
        _check(kwargs, "LoRARequest")
        super().__init__(**kwargs)


@dataclass
class Logprob:
    logprob: float
    rank: int | None = None


@dataclass
class Step:
    """One streamed output; ``finish_reason`` set on the last."""

    token_ids_diff: list[int]
    text_diff: str = ""
    logprobs_diff: list[dict] = field(default_factory=list)
    finish_reason: str | None = None


class ScriptedResult:
    """A ``GenerationResult`` that plays back ``steps`` (an exception step is raised)."""

    def __init__(self, steps: list, cached_tokens: int | None = None) -> None:
        self._steps = list(steps)
        #: Prompt tokens reused from the KV cache (None: not counted, as in old releases).
        self.cached_tokens = cached_tokens
        self.outputs: list[Step] = []
        self.finished = False
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True

    def __aiter__(self):
        return self

    async def __anext__(self):
        if self.finished:
            raise StopAsyncIteration
        await asyncio.sleep(0)
        step = Step([], finish_reason="cancelled") if self.aborted else self._steps.pop(0)
        if isinstance(step, BaseException):
            raise step
        self.outputs = [step]
        self.finished = step.finish_reason is not None
        return self


class LLM:
    """``tensorrt_llm.LLM``: records its keyword arguments and each submitted request."""

    #: What the next requests play back, one list of steps per request.
    scripts: list[list] = []
    #: The ``cached_tokens`` the next result reports (then back to None).
    cached_tokens_next: int | None = None
    #: Raised by the next ``generate_async`` instead of queueing, when set.
    refuse_next: Exception | None = None
    built: list[LLM] = []

    def __init__(self, model: str, **kwargs) -> None:
        _check({"model": model, **kwargs}, "LLM", "BaseLlmArgs", "TorchLlmArgs")
        self.kwargs = {"model": model, **kwargs}
        self.args = SimpleNamespace(max_seq_len=kwargs.get("max_seq_len"))
        self.submitted: list[tuple[list[int], SamplingParams, object]] = []
        self.results: list[ScriptedResult] = []
        LLM.built.append(self)

    def generate_async(self, inputs, sampling_params=None, lora_request=None, streaming=False):
        if LLM.refuse_next is not None:
            refusal, LLM.refuse_next = LLM.refuse_next, None
            raise refusal
        self.submitted.append((inputs, sampling_params, lora_request))
        result = ScriptedResult(LLM.scripts.pop(0), LLM.cached_tokens_next)
        LLM.cached_tokens_next = None
        self.results.append(result)
        return result

    def shutdown(self) -> None:
        pass


def install(monkeypatch) -> types.ModuleType:
    """Make ``import tensorrt_llm`` (and the submodules the engine uses) import this."""
    LLM.scripts = []
    LLM.refuse_next = None
    LLM.cached_tokens_next = None
    LLM.built = []
    root = types.ModuleType("tensorrt_llm")
    root.LLM = LLM
    root.SamplingParams = SamplingParams
    executor = types.ModuleType("tensorrt_llm.executor")
    executor.RequestError = RequestError
    request = types.ModuleType("tensorrt_llm.executor.request")
    request.LoRARequest = LoRARequest
    sampling = types.ModuleType("tensorrt_llm.sampling_params")
    sampling.GuidedDecodingParams = GuidedDecodingParams
    for name, module in {
        "tensorrt_llm": root,
        "tensorrt_llm.executor": executor,
        "tensorrt_llm.executor.request": request,
        "tensorrt_llm.sampling_params": sampling,
    }.items():
        monkeypatch.setitem(sys.modules, name, module)
    return root
