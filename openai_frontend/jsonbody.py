"""Large JSON bodies are parsed and validated in a worker thread that lets the loop run.

FastAPI parses and validates request bodies on the event loop. Moving that work to a
thread is not enough by itself: ``json.loads`` (C) and pydantic's validation (Rust) hold
the GIL for their whole call, so the loop waits for them anyway. An 8 MiB body of
230,000 tiny messages held it for ~0.1 s in ``json.loads`` and 0.5-2.7 s in validation.

So routes built with :class:`OffLoopJSONRoute` take a body above ``THRESHOLD_BYTES``
(that FastAPI would read as JSON) through a worker thread in short steps, between which
the interpreter hands the GIL to the loop (every ``sys.getswitchinterval()``, 5 ms):

- it is parsed by the standard library's pure-Python scanner (strings are still
  scanned in C), which runs bytecode and so lets the loop in;
- each long top-level list of objects (``messages``, Anthropic's ``messages``) is
  validated ``STEP_ITEMS`` items at a time; then the whole model is validated, which
  passes the items, already models, through at once;
- cyclic garbage collection is paused meanwhile (:mod:`openai_frontend.gc_pause`).

FastAPI is handed the validated model (Starlette's ``Request.json()`` caches it) and
finds nothing left to do. Errors keep FastAPI's shape (a ``RequestValidationError``,
which the app answers in each API's own shape); JSON nested deeper than Python's
recursion limit is refused at once. Small bodies take FastAPI's usual path: their parse
is too short to stall anything, and a thread hop would cost more.
"""

from __future__ import annotations

import asyncio
import json
import json.scanner
import types
import typing
from collections.abc import Callable, Coroutine
from functools import cache
from typing import Any, TypeVar

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError

from openai_frontend.errors import unparsable_json
from openai_frontend.gc_pause import call_gc_paused, free_in_steps

THRESHOLD_BYTES = 256 * 1024
#: Objects validated in one step: a few milliseconds of pydantic work holding the GIL.
STEP_ITEMS = 500

T = TypeVar("T")
#: Validates a decoded body: (value, FastAPI-shaped errors), as ``ModelField.validate``.
Validate = Callable[[Any], tuple[Any, list]]


class OffLoopJSONRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        validate = self._body_validator()

        async def prepare_then_handle(request: Request) -> Response:
            await prepare_large_body(request, validate)
            return await handler(request)

        return prepare_then_handle

    def _body_validator(self) -> Validate | None:
        """The route's one JSON body, validated as FastAPI would (None: several bodies)."""
        field = self.body_field
        if field is None or self._embed_body_fields:
            return None
        model = field.field_info.annotation
        steps = model if isinstance(model, type) and issubclass(model, BaseModel) else None

        def validate(decoded: Any) -> tuple[Any, list]:
            if steps is not None and isinstance(decoded, dict):
                try:
                    decoded = validated_long_lists(steps, decoded)
                except ValidationError as exc:
                    errors = exc.errors(include_url=False)
                    return None, [{**error, "loc": ("body", *error["loc"])} for error in errors]
            return field.validate(decoded, loc=("body",))

        return validate


async def prepare_large_body(request: Request, validate: Validate | None) -> None:
    """Parse (and validate) a large JSON body in a worker thread, for FastAPI to use."""
    body = await request.body()
    if len(body) <= THRESHOLD_BYTES or not declares_json(request):
        return
    request._json = await asyncio.to_thread(call_gc_paused, _decode_and_validate, body, validate)


def is_large(request: Request) -> bool:
    """Whether the request's body (already read) is past ``THRESHOLD_BYTES``."""
    return len(getattr(request, "_body", b"")) > THRESHOLD_BYTES


async def in_thread_if_large(request: Request, work: Callable[..., T], *args: Any) -> T:
    """``work(*args)`` in a worker thread for a large request, else right here: a
    dialect's translation of a large body builds as many objects as its validation."""
    if is_large(request):
        return await asyncio.to_thread(call_gc_paused, work, *args)
    return work(*args)


def declares_json(request: Request) -> bool:
    """Whether FastAPI reads the body as JSON (``application/json`` or ``+json``; it
    refuses a body with no content type)."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    main, _, sub = kind.partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


def _decode_and_validate(body: bytes, validate: Validate | None) -> Any:
    decoded = _decode(body)
    if validate is None:
        return decoded
    value, errors = validate(decoded)
    if errors:
        raise RequestValidationError(errors, body=decoded)
    return value


#: Objects with more members than this become dicts in Python steps, not one C call.
STEP_MEMBERS = 4096


def _dict_in_steps(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object's members as a dict, built in bytecode when there are many.

    The scanner ends each object with ``dict(pairs)``: one C call, which on 400,000
    ``logit_bias`` entries held the GIL (so the event loop) for 90-100 ms on a busy
    machine, and freeing the list of pairs afterwards held it again. A Python loop lets
    the loop in every switch interval. Later members win, as in ``dict``."""
    if len(pairs) <= STEP_MEMBERS:
        return dict(pairs)
    members: dict[str, Any] = {}
    for key, value in pairs:
        members[key] = value
    free_in_steps(pairs)  # the scanner's list of pairs, freed in one C call otherwise
    return members


def _decode(body: bytes) -> Any:
    """``json.loads`` with the pure-Python scanner, which lets other threads run."""
    try:
        text = body.decode(json.detect_encoding(body), "surrogatepass")
        decoder = json.JSONDecoder(object_pairs_hook=_dict_in_steps)
        decoder.scan_once = json.scanner.py_make_scanner(decoder)
        try:
            return decoder.decode(text)
        except RecursionError:
            # The Python scanner takes ~2 frames a level, C's one: let C decide.
            return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RequestValidationError(
            [
                {
                    "type": "json_invalid",
                    "loc": ("body", exc.pos),
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": {"error": exc.msg},
                }
            ]
        ) from None
    except (ValueError, RecursionError):  # not UTF-8, or nested past the recursion limit
        raise unparsable_json() from None


def validated_long_lists(model: type[BaseModel], decoded: dict) -> dict:
    """``decoded`` with each long list of objects replaced by its validated items,
    validated ``STEP_ITEMS`` at a time (a ``ValidationError`` locates them in
    ``decoded``); then ``model.model_validate`` passes the items through at once."""
    prepared = dict(decoded)
    for name, field in model.model_fields.items():
        key = field.alias or name
        value = decoded.get(key)
        adapter = _items_adapter(model, name)
        if adapter is None or not isinstance(value, list) or len(value) <= STEP_ITEMS:
            continue
        items: list = []
        for start in range(0, len(value), STEP_ITEMS):
            try:
                items += adapter.validate_python(value[start : start + STEP_ITEMS])
            except ValidationError as exc:
                raise _located(exc, model, key, start) from None
        prepared[key] = items
    return prepared


@cache
def _items_adapter(model: type[BaseModel], name: str) -> TypeAdapter | None:
    """A validator of ``list[item]`` for a field whose only list type holds objects."""
    lists = [
        member
        for member in _members(model.model_fields[name].annotation)
        if typing.get_origin(member) is list
    ]
    if len(lists) != 1:
        return None
    (item,) = typing.get_args(lists[0])
    if not any(isinstance(m, type) and issubclass(m, BaseModel) for m in _members(item)):
        return None
    return TypeAdapter(list[item])


def _members(annotation: Any) -> list[Any]:
    """The types a field may hold: unions unpacked, ``Annotated`` unwrapped."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _members(arg)]
    return [annotation]


def _located(error: ValidationError, model: type, key: str, start: int) -> ValidationError:
    """A step's errors as the whole model's validation reports them: at
    ``(key, index, ...)``, with the same types and messages."""
    return ValidationError.from_exception_data(
        model.__name__,
        [
            {
                "type": PydanticCustomError(detail["type"], detail["msg"]),
                "loc": (key, start + detail["loc"][0], *detail["loc"][1:]),
                "input": detail["input"],
            }
            for detail in error.errors(include_url=False)
        ],
    )
