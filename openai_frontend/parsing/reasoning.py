"""Reasoning parsers: the ``<think>…</think>`` section becomes ``reasoning_content``.

Two families differ only in how the section opens:

* ``qwen3``: the model itself writes ``<think>`` at the very start; a reply that does
  not start with it (``enable_thinking: false``) has no reasoning at all.
* ``deepseek_r1``: the chat template may already have opened ``<think>`` in the
  prompt, so the reply starts inside the section; everything before ``</think>`` is
  reasoning, with or without an opening tag. A reply cut by ``max_tokens`` before
  ``</think>`` is all reasoning and no content.

Either parser also reads the end of the rendered prompt when given it: a prompt that
ends in ``<think>`` starts the reply inside the reasoning, one that ends in
``</think>`` starts it in the answer. The answer after ``</think>`` loses its leading
whitespace (the models write ``</think>\\n\\n``). Partial tags at a delta's end are held back by
:class:`~openai_frontend.textstream.MarkerSearch`, never emitted.
"""

from __future__ import annotations

from openai_frontend.textstream import MarkerSearch

OPEN = "<think>"
CLOSE = "</think>"

_CLOSE_SEARCH = MarkerSearch([CLOSE])


class ThinkBlockParser:
    """One ``<think>`` section at the start of a reply; subclasses say if it is implicit."""

    #: Whether a reply without an opening tag is reasoning (the prompt opened it).
    implicit_open = False

    def __init__(self, prompt: str = "") -> None:
        """``prompt``: the rendered prompt, or its tail. A prompt that already opened
        the section (QwQ, R1-Distill) starts the reply inside it; one that already
        closed it (Qwen3 with ``enable_thinking: false``, DeepSeek-V3.1 without
        ``thinking``) starts it in the answer."""
        self._pending = ""
        self._state = "opening"  # -> "reasoning" -> "answer_start" -> "answer"
        self.in_reasoning = self.implicit_open
        self.passthrough = False
        tail = prompt.rstrip()
        if tail.endswith(CLOSE):
            self._enter("answer")
        elif tail.endswith(OPEN):
            self._enter("reasoning")

    def feed(self, text: str) -> tuple[str, str]:
        if self._state == "answer":
            return "", text
        self._pending += text
        reasoning, answer = "", ""
        if self._state == "opening":
            self._open()
        if self._state == "reasoning":
            reasoning = self._reason()
        if self._state == "answer_start":
            answer = self._answer_start()
        elif self._state == "answer":
            answer, self._pending = self._pending, ""
        return reasoning, answer

    def finish(self) -> tuple[str, str]:
        """Whatever was held back: a partial tag stays in the section it was found in."""
        rest, self._pending = self._pending, ""
        state = self._state
        self._enter("answer")
        if state == "reasoning" or (state == "opening" and self.implicit_open):
            return rest, ""
        return "", "" if state == "answer_start" else rest

    def _open(self) -> None:
        head = self._pending.lstrip()
        if head.startswith(OPEN):
            self._pending = head[len(OPEN) :]
            self._enter("reasoning")
        elif not OPEN.startswith(head):
            self._enter("reasoning" if self.implicit_open else "answer")

    def _reason(self) -> str:
        reasoning, close, self._pending = _CLOSE_SEARCH.split(self._pending)
        if close is not None:
            self._enter("answer_start")
        return reasoning

    def _answer_start(self) -> str:
        answer = self._pending.lstrip()
        if answer:
            self._enter("answer")
        self._pending = ""
        return answer

    def _enter(self, state: str) -> None:
        self._state = state
        self.in_reasoning = state == "reasoning"
        self.passthrough = state == "answer"


class Qwen3ReasoningParser(ThinkBlockParser):
    """Qwen3 / QwQ-style replies that open ``<think>`` themselves (or not at all)."""

    implicit_open = False


class DeepSeekR1ReasoningParser(ThinkBlockParser):
    """DeepSeek-R1 replies, whose template may open ``<think>`` in the prompt."""

    implicit_open = True
