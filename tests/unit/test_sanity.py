"""The start-up sanity check: what it logs for a right and for a wrong answer.

The engines here inject faults (a fixed wrong or right answer, or a crash); the check on
the real engine runs in tests/test_default_model.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from engines.base import Delta, GenerateRequest, ModelInfo
from openai_frontend.sanity import QUESTION, check_default_model
from templates.sources import TemplateResolver, load_template_option, read_model_templates


class FixedAnswerEngine:
    """Fault injection: answers every prompt with one text, and records the prompt."""

    def __init__(self, answer: str, dtype: str = "bfloat16") -> None:
        self.answer = answer
        self.dtype = dtype
        self.prompts: list[str] = []
        self.requests: list[GenerateRequest] = []

    def model(self) -> ModelInfo:
        return ModelInfo(id="tiny", max_model_len=2048, dtype=self.dtype)

    def tokenize(self, text: str, add_special_tokens: bool) -> list[int]:
        self.prompts.append(text)
        return [ord(c) for c in text]

    async def generate(self, request: GenerateRequest) -> AsyncIterator[Delta]:
        self.requests.append(request)
        for i, word in enumerate(self.answer.split(" ")):
            yield Delta(text=(" " if i else "") + word, token_ids=[i], completion_tokens=i + 1)


class CrashingEngine(FixedAnswerEngine):
    """Fault injection: generation fails at once."""

    async def generate(self, request: GenerateRequest) -> AsyncIterator[Delta]:
        raise RuntimeError("engine fell over")
        yield  # pragma: no cover (makes this an async generator)


def _resolver() -> TemplateResolver:
    return TemplateResolver(
        model=read_model_templates(None), server_template=load_template_option("chatml")
    )


def test_a_wrong_answer_logs_a_loud_warning_with_dtype_and_remedy(caplog):
    engine = FixedAnswerEngine("L'Étoile, la Marseillaise, la femme")
    with caplog.at_level(logging.INFO, logger="openai_frontend.sanity"):
        assert asyncio.run(check_default_model(engine, _resolver())) is False
    warning = next(r for r in caplog.records if r.levelno == logging.WARNING).getMessage()
    assert "SANITY CHECK FAILED" in warning
    assert "L'Étoile" in warning
    assert "dtype bfloat16" in warning
    assert "--dtype float32" in warning


def test_the_question_goes_through_the_template_greedily(caplog):
    engine = FixedAnswerEngine("The capital of France is Paris.", dtype="float32")
    with caplog.at_level(logging.INFO, logger="openai_frontend.sanity"):
        assert asyncio.run(check_default_model(engine, _resolver())) is True
    assert engine.prompts == [f"<|im_start|>user\n{QUESTION}<|im_end|>\n<|im_start|>assistant\n"]
    assert engine.requests[0].sampling.temperature == 0.0
    assert engine.requests[0].adapter is None
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "passed (dtype float32)" in caplog.text


def test_a_check_that_cannot_run_warns_and_does_not_raise(caplog):
    with caplog.at_level(logging.INFO, logger="openai_frontend.sanity"):
        assert asyncio.run(check_default_model(CrashingEngine(""), _resolver())) is False
    assert "could not run: engine fell over" in caplog.text
