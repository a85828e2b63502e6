"""A chat request's tools and reasoning, prepared before rendering: checks, the forced
tool choice's structured output, the tool prompt, and the output parsers to use.

The router asks :func:`prepare_chat` for a :class:`ChatPlan`, renders ``plan.request``
and builds one :meth:`ChatPlan.output_parser` per choice; everything model-specific
(which parser, whether the gateway writes the tool prompt) is decided here, so the
router stays the same for every model family.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from engines.base import StructuredOutput
from openai_frontend.chat_prompt import off_loop, render_chat_now
from openai_frontend.config import ServerConfig
from openai_frontend.errors import APIError
from openai_frontend.gc_pause import call_gc_paused
from openai_frontend.parser_choice import ChosenParsers, choose_parsers
from openai_frontend.parsing.base import ParsedDelta, ToolParser
from openai_frontend.parsing.forced import forced_function_name, forced_tool_schema
from openai_frontend.parsing.pipeline import OutputParser, chat_finish_reason
from openai_frontend.parsing.registry import (
    HARMONY,
    call_grammar,
    make_output_parser,
    tool_parser_for_request,
)
from openai_frontend.parsing.strict import StrictSchemas, strict_tools_tag
from openai_frontend.parsing.validation import validate_tool_messages, validate_tools
from openai_frontend.reasoning_constraint import constrained_field, reasoning_start, thinking_off
from openai_frontend.schemas.chat import ChatCompletionRequest
from openai_frontend.tool_prompt import with_tool_prompt
from templates.budget import render_deadline
from templates.renderer import ChatTemplateError, select_template
from templates.sources import TemplateResolver


@dataclass(frozen=True)
class ChatPlan:
    #: The request to render: the client's, or with the tool prompt and template
    #: variables the gateway added.
    request: ChatCompletionRequest
    parsers: ChosenParsers
    #: The forced tool choice's constraint, else None.
    structured_output: StructuredOutput | None
    #: ``auto`` with strict tools in a format with a trigger: the structural tag that
    #: holds their calls to their schemas (:mod:`openai_frontend.parsing.strict`), else
    #: None (and strict calls are checked after the fact).
    strict_tag: dict | None = None

    def for_engine(self, supported: frozenset[str], constrained: bool) -> ChatPlan:
        """This plan on an engine that honours ``supported`` sampling fields, for a
        reply already ``constrained`` by other structured output (``response_format``):
        without the engine's structural tags, or beside another constraint, the strict
        calls are checked instead."""
        if self.strict_tag is None or ("structural_tag" in supported and not constrained):
            return self
        return replace(self, strict_tag=None)

    def output_parser(self, prompt: str) -> OutputParser:
        """A fresh parser stage for one choice (``prompt``: the rendered prompt)."""
        body = self.request
        strict = None if self.strict_tag is not None else StrictSchemas.of(body.tools)
        tools: ToolParser | None = tool_parser_for_request(
            self.parsers.tools, body.tools, body.tool_choice, strict
        )
        if tools is not None and body.parallel_tool_calls is False:
            tools = FirstCallOnly(tools)
        return make_output_parser(self.parsers.reasoning, tools, prompt[-64:])

    def constraint_after_reasoning(self, prompt: str) -> str | None:
        """Where a grammar-constrained reply's grammar starts (None: at its first token;
        see :mod:`openai_frontend.reasoning_constraint`); ``prompt``: the rendered one."""
        if constrained_field(self.request) is None:
            return None
        return reasoning_start(self.parsers.reasoning, prompt)

    @property
    def skip_special_tokens(self) -> bool:
        """The client's ``skip_special_tokens``; unset, False when the model writes its
        calls in its own markup, as vLLM does: a format's marker may be a special token
        (Mistral's ``[TOOL_CALLS]``, Llama's ``<|python_tag|>``), and decoding would cut
        it out of the text before the parser could see it."""
        body = self.request
        if "skip_special_tokens" in body.model_fields_set:
            return body.skip_special_tokens
        if self.parsers.tools == HARMONY:
            return False  # every reply is harmony messages, tools or not
        if not _calls_by_format(body):
            return body.skip_special_tokens
        return self.parsers.tools is None

    @property
    def reports_reasoning(self) -> bool:
        """Whether ``usage`` carries ``reasoning_tokens`` (a reasoning parser runs, or
        harmony's, which splits off the reasoning itself)."""
        return self.parsers.reasoning is not None or self.parsers.tools == HARMONY

    def finish_reason(self, reason: str | None, called_tools: bool) -> str:
        """``tool_calls`` when the model chose to call; a named ``tool_choice`` is not
        the model's choice, and OpenAI answers it with ``stop``."""
        forced_name = forced_function_name(self.request.tool_choice) if self.request.tools else None
        return chat_finish_reason(reason, called_tools and forced_name is None)


class FirstCallOnly:
    """``parallel_tool_calls: false`` for a format parser: the first call is the reply.

    The model may still write a second call; it is not the answer the client asked for,
    and it would run a tool the client said to run alone, so it is left out.
    """

    def __init__(self, parser: ToolParser) -> None:
        self._parser = parser

    def feed(self, text: str) -> ParsedDelta:
        return self._first(self._parser.feed(text))

    def finish(self) -> ParsedDelta:
        return self._first(self._parser.finish())

    @staticmethod
    def _first(parsed: ParsedDelta) -> ParsedDelta:
        if parsed.tool_calls:
            parsed.tool_calls = [piece for piece in parsed.tool_calls if piece.index == 0]
        return parsed


def prepare_chat(
    body: ChatCompletionRequest,
    resolver: TemplateResolver,
    config: ServerConfig,
    grammar_waits_for_reasoning: bool = True,
) -> ChatPlan:
    """Check the request's tool fields and decide how its output is parsed.

    ``grammar_waits_for_reasoning``: whether the engine can start a grammar where the
    reasoning ends; if not, a constrained request to a reasoning model has its thinking
    turned off (:func:`~openai_frontend.reasoning_constraint.thinking_off`)."""
    check_tool_fields(body)
    template = request_template(body, resolver)
    tokens = tuple(sorted(resolver.model.special_tokens.items()))
    parsers = choose_parsers(template, config.tool_call_parser, config.reasoning_parser, tokens)
    update: dict[str, Any] = {}
    if parsers.inject_tool_prompt:
        offered = body.tools if _calls_by_format(body) else None
        update["messages"] = with_tool_prompt(body.messages, offered)
    kwargs = _template_variable_kwargs(body, template)
    if kwargs is not None:
        update["chat_template_kwargs"] = kwargs
    if not grammar_waits_for_reasoning and parsers.reasoning and constrained_field(body):
        update["chat_template_kwargs"] = thinking_off(
            body, template, update.get("chat_template_kwargs", body.chat_template_kwargs)
        )
    schema = forced_tool_schema(body.tools, body.tool_choice, body.parallel_tool_calls)
    strict_tag = None
    if _calls_by_format(body):
        grammar = call_grammar(parsers.tools)
        strict_tag = strict_tools_tag(grammar, body.tools, body.parallel_tool_calls)
    return ChatPlan(
        request=body.model_copy(update=update) if update else body,
        parsers=parsers,
        structured_output=StructuredOutput(json_schema=schema) if schema is not None else None,
        strict_tag=strict_tag,
    )


async def plan_and_render(
    body: ChatCompletionRequest,
    resolver: TemplateResolver,
    config: ServerConfig,
    *,
    large: bool = False,
    grammar_waits_for_reasoning: bool = True,
) -> tuple[ChatPlan, str]:
    """The plan and its rendered prompt, in one trip to a render thread: both run
    template code (the plan's probe renders, then the render itself). A ``large``
    request renders with garbage collection paused (:mod:`openai_frontend.gc_pause`)."""
    args = (body, resolver, config, grammar_waits_for_reasoning)
    if large:
        return await off_loop(call_gc_paused, _plan_and_render_now, *args)
    return await off_loop(_plan_and_render_now, *args)


def _plan_and_render_now(
    body: ChatCompletionRequest,
    resolver: TemplateResolver,
    config: ServerConfig,
    grammar_waits_for_reasoning: bool = True,
) -> tuple[ChatPlan, str]:
    """One render deadline for all of it: the probes and the render inside keep this
    outer one (``render_deadline`` nests), so a request's template work takes at most
    ``MAX_RENDER_SECONDS`` in all, not that much per render."""
    with render_deadline():
        plan = prepare_chat(body, resolver, config, grammar_waits_for_reasoning)
        return plan, render_chat_now(plan.request, resolver)


def check_tool_fields(body: ChatCompletionRequest) -> None:
    """OpenAI's 400s for tool fields, before any rendering or token."""
    if body.tool_choice is not None and not body.tools:
        raise APIError(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' "
            "are specified.",
            param="tool_choice",
        )
    validate_tools(body.tools, body.tool_choice, body.parallel_tool_calls)
    validate_tool_messages(body.messages)
    forced = body.tool_choice == "required" or forced_function_name(body.tool_choice) is not None
    if forced and body.response_format is not None and body.response_format.type != "text":
        raise APIError(
            "response_format cannot be combined with a forced tool_choice ('required' or a "
            "named function): both constrain the whole reply.",
            param="response_format",
        )


def request_template(body: ChatCompletionRequest, resolver: TemplateResolver) -> str:
    """The template source this request renders with (400 when there is none)."""
    try:
        return select_template(resolver.resolve(body.chat_template), bool(body.tools))
    except ChatTemplateError as exc:
        raise APIError(exc.message, param=exc.param) from None


def _calls_by_format(body: ChatCompletionRequest) -> bool:
    """``auto`` (or no choice): the model decides, writing the format's markup."""
    return bool(body.tools) and body.tool_choice in (None, "auto")


#: Request fields a chat template may read as variables of the same name (gpt-oss's
#: reads reasoning_effort). No other way to honour them exists, so a template that does
#: not read one gets a 400 naming it.
TEMPLATE_VARIABLES = ("reasoning_effort", "verbosity")


def _template_variable_kwargs(body: ChatCompletionRequest, template: str) -> dict | None:
    """The request's template-variable fields, merged under its ``chat_template_kwargs``
    (which win); None when it sets none."""
    asked = {name: getattr(body, name) for name in TEMPLATE_VARIABLES}
    asked = {name: value for name, value in asked.items() if value is not None}
    if not asked:
        return None
    for name in asked:
        if name not in template:
            raise APIError(
                f"{name} is not supported by this model: its chat template has no {name} "
                "variable (send chat_template_kwargs the template does read, "
                "e.g. enable_thinking).",
                param=name,
            )
    return {**asked, **(body.chat_template_kwargs or {})}
