"""The output parser stage of one chat request: every choice's engine deltas become
content, reasoning and tool-call deltas, the same way streamed or not.

Streaming sends each :meth:`ChoiceOutputs.parse` result as a chunk; a non-streamed
reply :meth:`ChoiceOutputs.collect`\\ s the very same results into its message, so the
two can never disagree.
"""

from __future__ import annotations

from typing import Any

from engines.base import Delta
from openai_frontend.chat_tools import ChatPlan
from openai_frontend.choices import Choice, cached_tokens, usage
from openai_frontend.parsing.base import ParsedDelta
from openai_frontend.parsing.pipeline import MessageBuilder


class ChoiceOutputs:
    """Per choice: the parser stage, its accumulated message, and its usage counts."""

    def __init__(self, plan: ChatPlan, prompt: str, n: int) -> None:
        # Built now, before generation starts: an unusable tool_choice is a plain 400.
        self._plan = plan
        self._parsers = [plan.output_parser(prompt) for _ in range(n)]
        self._include_reasoning = plan.request.include_reasoning
        self._messages: list[MessageBuilder] = []
        self.choices = [Choice() for _ in range(n)]

    def parse(self, index: int, delta: Delta) -> ParsedDelta:
        """One engine delta of choice ``index``, parsed (maybe empty: held back)."""
        self.choices[index].count(delta)
        parsed = self._parsers[index].parse(delta)
        if not self._include_reasoning:
            parsed.reasoning = ""
        return parsed

    def collect(self, index: int, delta: Delta) -> None:
        """For a non-streamed reply: parse and keep."""
        if not self._messages:
            self._messages = [MessageBuilder() for _ in self.choices]
        if delta.logprobs:
            self.choices[index].logprobs.extend(delta.logprobs)
        self._messages[index].add(self.parse(index, delta))

    def message(self, index: int) -> dict[str, Any]:
        """``content``, and ``reasoning_content`` / ``tool_calls`` when there are any."""
        if not self._messages:
            return {"content": ""}
        return self._messages[index].fields()

    def finish_reason(self, index: int) -> str:
        return self._plan.finish_reason(
            self.choices[index].finish_reason, self._parsers[index].called_tools
        )

    def usage(self, prompt_tokens: int) -> dict[str, Any]:
        counts = usage(
            prompt_tokens,
            sum(choice.completion_tokens for choice in self.choices),
            cached_tokens(self.choices, len(self.choices)),
        )
        if self._plan.reports_reasoning:
            reasoning = sum(parser.reasoning_tokens for parser in self._parsers)
            counts["completion_tokens_details"] = {"reasoning_tokens": reasoning}
        return counts
