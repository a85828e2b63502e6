"""Validate bodies and stream chunks against OpenAI's official OpenAPI spec.

The spec lives at ``../shared/spec/openai-openapi.yaml`` (beside this checkout). It
declares OpenAPI 3.1 but still uses ``nullable: true``; we read that as "or null".
Completion stream chunks reuse ``CreateCompletionResponse``, whose ``finish_reason`` is
not nullable although OpenAI's API sends null until the last chunk. For the same reason
(a non-stream schema reused for chunks), its ``usage`` is not nullable, although with
``stream_options.include_usage`` OpenAI documents ``usage: null`` on every chunk but the
last. ``CompletionStreamChunk`` allows exactly those two nulls and nothing else.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(__file__).resolve().parents[2] / "shared" / "spec" / "openai-openapi.yaml"
_BASE = "urn:openai-spec"


def _nullable_to_anyof(node: object) -> object:
    if isinstance(node, dict):
        node = {key: _nullable_to_anyof(value) for key, value in node.items()}
        if node.pop("nullable", False) is True:
            return {"anyOf": [node, {"type": "null"}]}
        return node
    if isinstance(node, list):
        return [_nullable_to_anyof(item) for item in node]
    return node


@functools.cache
def _spec() -> dict:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with SPEC_PATH.open(encoding="utf-8") as handle:
        spec = yaml.load(handle, Loader=loader)
    spec = _nullable_to_anyof(spec)
    schemas = spec["components"]["schemas"]
    stream = copy.deepcopy(schemas["CreateCompletionResponse"])
    finish = stream["properties"]["choices"]["items"]["properties"]["finish_reason"]
    stream["properties"]["choices"]["items"]["properties"]["finish_reason"] = {
        "anyOf": [finish, {"type": "null"}]
    }
    stream["properties"]["usage"] = {"anyOf": [stream["properties"]["usage"], {"type": "null"}]}
    schemas["CompletionStreamChunk"] = stream
    return spec


@functools.cache
def _validator(name: str) -> jsonschema.protocols.Validator:
    spec = _spec()
    registry = Registry().with_resource(_BASE, Resource(contents=spec, specification=DRAFT202012))
    schema = {"$ref": f"{_BASE}#/components/schemas/{name}"}
    return jsonschema.Draft202012Validator(schema, registry=registry)


def validate(body: object, schema_name: str) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``body`` matches the named schema."""
    _validator(schema_name).validate(body)


def assert_valid(body: object, schema_name: str) -> None:
    errors = sorted(_validator(schema_name).iter_errors(body), key=lambda e: list(e.path))
    assert not errors, f"{schema_name}: " + "; ".join(
        f"{list(e.path)}: {e.message}" for e in errors[:5]
    )


def assert_anthropic_error(body: object) -> None:
    """Anthropic's error shape (``/v1/messages``), by the official SDK's own model: a known
    error type and a message, and nothing else in ``error``."""
    from anthropic.types.shared import ErrorResponse

    ErrorResponse.model_validate(body)
    assert isinstance(body, dict) and set(body["error"]) == {"type", "message"}, body
