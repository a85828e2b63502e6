"""A vLLM reasoning parser that tells structured output where the reasoning ends.

vLLM starts a request's grammar once its structured-output reasoning parser says the
reasoning is over (``StructuredOutputsConfig.reasoning_parser``); before that the model
writes freely. vLLM's own ``deepseek_r1`` and ``qwen3`` parsers look for ``</think>`` as
one token id and refuse a tokenizer without it, yet many models (and every LoRA taught to
think on a small base) write the tag as several tokens. This parser reads the text of the
reply's last tokens instead, so it works with any tokenizer.

The gateway's own reasoning parser decides per request where the reply starts
(``reasoning_parser_kwargs``): ``prompt_tokens`` is the prompt's length, so the reply's
tokens can be told apart; ``may_open`` says the reply has a reasoning section only if it
opens ``<think>`` itself (``qwen3``), otherwise it starts inside one (``deepseek_r1``, or a
prompt that ended in ``<think>``). A request whose reasoning is already over (a prompt that
closed it, or no reasoning parser) is sent with ``reasoning_ended=True`` and never asks.

vLLM imports this file by path in its engine process (``reasoning_parser_plugin``), so it
imports vLLM only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from vllm.reasoning import ReasoningParser, ReasoningParserManager

#: The name the engine registers and configures this parser under.
NAME = "openai_frontend_think"
OPEN = "<think>"
CLOSE = "</think>"
#: Tokens decoded to find a tag that ends in the last one: a tag is at most this many.
_TAIL = 16


def reasoning_over(reply_start: str, reply_tail: str, may_open: bool) -> bool:
    """Whether the reply's reasoning is over, from the text of its first tokens and of
    its last ones: ``</think>`` closed it, or (``may_open``) the reply began with
    something other than ``<think>`` and so never had any."""
    if CLOSE in reply_tail:
        return True
    head = reply_start.lstrip()
    return may_open and bool(head) and not (head.startswith(OPEN) or OPEN.startswith(head))


@ReasoningParserManager.register_module(NAME)
class ThinkEndGate(ReasoningParser):
    """Says when ``</think>`` has closed the reply's reasoning, whatever its tokens."""

    def __init__(
        self, tokenizer, *args, prompt_tokens: int = 0, may_open: bool = False, **kwargs
    ) -> None:
        super().__init__(tokenizer, *args, **kwargs)
        self._prompt_tokens = prompt_tokens
        self._may_open = may_open

    @property
    def reasoning_start_str(self) -> str:
        return OPEN

    @property
    def reasoning_end_str(self) -> str:
        return CLOSE

    def is_reasoning_end(self, input_ids: Sequence[int]) -> bool:
        """``input_ids``: the prompt and the reply so far. vLLM asks after each step and
        stops asking once it is true, so a ``</think>`` in the last few tokens is the
        first one."""
        reply = list(input_ids[self._prompt_tokens :])
        decode = self.model_tokenizer.decode
        return reasoning_over(decode(reply[:_TAIL]), decode(reply[-_TAIL:]), self._may_open)

    def is_reasoning_end_streaming(
        self, input_ids: Sequence[int], delta_ids: Iterable[int]
    ) -> bool:
        return self.is_reasoning_end(input_ids)

    def extract_content_ids(self, input_ids: list[int]) -> list[int]:
        """Not used by structured output; the gateway splits the text itself."""
        return input_ids

    def extract_reasoning(self, model_output: str, request: object) -> tuple[str | None, str]:
        reasoning, _, content = model_output.partition(CLOSE)
        return reasoning.removeprefix(OPEN), content

    def extract_reasoning_streaming(self, *args: object, **kwargs: object) -> None:
        return None
