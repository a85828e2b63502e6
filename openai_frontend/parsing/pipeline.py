"""The output parser stage: engine deltas in, content / reasoning / tool-call deltas out.

One :class:`OutputParser` per choice. Reasoning is split off first; the answer that is
left is then parsed for tool calls. Streamed and non-streamed replies go through the
same code: a non-streamed reply feeds the same deltas (or the whole text once) and
accumulates the results in a :class:`MessageBuilder`.

Router wiring (names from ``.registry``, ``.validation`` and ``.forced``)::

    validate_tools(body.tools, body.tool_choice, body.parallel_tool_calls)  # per request
    validate_tool_messages(body.messages)
    schema = forced_tool_schema(body.tools, body.tool_choice, body.parallel_tool_calls)
    # -> StructuredOutput(json_schema=schema) when not None
    tools = tool_parser_for_request(configured_tool_parser, body.tools, body.tool_choice)
    parser = make_output_parser(configured_reasoning_parser, tools, prompt)  # per choice
    parsed = parser.parse(delta)                    # each engine Delta of that choice
    chunk["delta"] = parsed.to_openai()             # stream it if parsed (or logprobs)
    finish_reason = chat_finish_reason(delta.finish_reason, parser.called_tools)

(``tool_parser_for_request`` builds a fresh parser: call it once per choice.)
A held-back delta parses to an empty :class:`ParsedDelta`; its logprobs, if any, still
belong to that chunk.

``usage.completion_tokens_details.reasoning_tokens`` is ``parser.reasoning_tokens``
summed over choices: the engine's ``completion_tokens`` count at the last delta that
carried reasoning text (the delta that closed ``</think>`` included). A reply cut inside
its reasoning counts all its tokens; a reply without reasoning counts 0. The error is
at most the answer tokens that shared the closing delta (one token per delta for
in-process engines).
"""

from __future__ import annotations

from typing import Any

from engines.base import Delta
from openai_frontend.choices import finish_reason
from openai_frontend.parsing.base import ParsedDelta, ReasoningParser, ToolParser


class OutputParser:
    """Reasoning parser, then tool parser, for one choice's stream of deltas."""

    def __init__(
        self, reasoning: ReasoningParser | None = None, tools: ToolParser | None = None
    ) -> None:
        self._reasoning = reasoning
        self._tools = tools
        self.reasoning_tokens = 0
        self.called_tools = False

    def parse(self, delta: Delta) -> ParsedDelta:
        """One engine delta; the last one (``finish_reason`` set) also flushes."""
        parsed = self.feed(delta.text, delta.completion_tokens)
        if delta.finish_reason is not None:
            parsed.add(self.finish())
        return parsed

    def feed(self, text: str, completion_tokens: int = 0) -> ParsedDelta:
        if self._reasoning is None and self._tools is None:
            return ParsedDelta(content=text)
        thought, answer = "", text
        if self._reasoning is not None and not self._reasoning.passthrough:
            was_reasoning = self._reasoning.in_reasoning
            thought, answer = self._reasoning.feed(text)
            if was_reasoning or thought or self._reasoning.in_reasoning:
                self.reasoning_tokens = completion_tokens
        parsed = self._answer(thought, answer, final=False)
        if parsed.reasoning:  # harmony's own reasoning, or the reasoning parser's
            self.reasoning_tokens = completion_tokens
        return parsed

    def finish(self) -> ParsedDelta:
        """Everything held back, once the engine has finished the choice."""
        thought, answer = self._reasoning.finish() if self._reasoning else ("", "")
        return self._answer(thought, answer, final=True)

    def _answer(self, thought: str, answer: str, final: bool) -> ParsedDelta:
        if self._tools is None:
            return ParsedDelta(content=answer, reasoning=thought)
        parsed = self._tools.feed(answer) if answer else ParsedDelta()
        if final:
            parsed.add(self._tools.finish())
        parsed.reasoning = thought + parsed.reasoning  # harmony's parser splits off its own
        if parsed.tool_calls:
            self.called_tools = True
        return parsed


class MessageBuilder:
    """A non-streamed choice's ``message`` fields, accumulated from parsed deltas."""

    def __init__(self) -> None:
        self._content: list[str] = []
        self._reasoning: list[str] = []
        self._calls: list[dict[str, Any]] = []

    def add(self, parsed: ParsedDelta) -> None:
        if parsed.content:
            self._content.append(parsed.content)
        if parsed.reasoning:
            self._reasoning.append(parsed.reasoning)
        for piece in parsed.tool_calls:
            if piece.name is not None:
                function = {"name": piece.name, "arguments": piece.arguments}
                self._calls.append({"id": piece.id, "type": "function", "function": function})
            else:
                self._calls[piece.index]["function"]["arguments"] += piece.arguments

    def fields(self) -> dict[str, Any]:
        """``content`` (None when the reply is only tool calls), and ``reasoning_content``
        and ``tool_calls`` when there are any."""
        content = "".join(self._content)
        fields: dict[str, Any] = {"content": None if self._calls and not content else content}
        if self._reasoning:
            fields["reasoning_content"] = "".join(self._reasoning)
        if self._calls:
            fields["tool_calls"] = self._calls
        return fields


def parse_whole(parser: OutputParser, text: str) -> dict[str, Any]:
    """A complete reply's message fields, through the very same parser stage."""
    message = MessageBuilder()
    message.add(parser.feed(text))
    message.add(parser.finish())
    return message.fields()


def chat_finish_reason(reason: str | None, called_tools: bool) -> str:
    """``tool_calls`` when the reply made calls; a reply cut by the token limit still
    says ``length``, since its last call (or its text) may be incomplete."""
    if called_tools and reason != "length":
        return "tool_calls"
    return finish_reason(reason)
