"""``tool_choice: "required"`` with tools whose schemas keep models in ``$defs`` (every
pydantic-made schema): the definitions move to the root of the forced schema, where
their ``#/$defs/...`` pointers resolve, for jsonschema and both grammar backends."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest
from pydantic import BaseModel

from openai_frontend.parsing.forced import forced_tool_schema


class City(BaseModel):
    name: str
    country: str


class Trip(BaseModel):
    origin: City
    destination: City


class OtherCity(BaseModel):
    """Another ``City``: the same name, a different model."""

    zip_code: int


def tool(name: str, model: type[BaseModel]) -> dict:
    return {"type": "function", "function": {"name": name, "parameters": model.model_json_schema()}}


def _renamed_city() -> dict:
    class Visit(BaseModel):
        city: OtherCity

    schema = Visit.model_json_schema()
    schema["$defs"] = {"City": schema["$defs"].pop("OtherCity")}
    schema["properties"]["city"] = {"$ref": "#/$defs/City"}
    return schema


TOOLS = [
    tool("book_trip", Trip),
    tool("weather", City),  # no $defs
    {"type": "function", "function": {"name": "visit", "parameters": _renamed_city()}},
]
PARIS = {"name": "Paris", "country": "FR"}


def required_schema() -> dict:
    return forced_tool_schema(TOOLS, "required")


def test_the_definitions_resolve_at_the_root():
    schema = required_schema()
    trip = {"name": "book_trip", "arguments": {"origin": PARIS, "destination": PARIS}}
    visit = {"name": "visit", "arguments": {"city": {"zip_code": 75001}}}
    jsonschema.validate([trip, visit], schema)
    with pytest.raises(jsonschema.ValidationError):  # Trip's City is enforced
        jsonschema.validate([{**trip, "arguments": {"origin": {}, "destination": PARIS}}], schema)
    with pytest.raises(jsonschema.ValidationError):  # and visit's own City, not Trip's
        jsonschema.validate([{"name": "visit", "arguments": {"city": PARIS}}], schema)


def test_the_clients_tools_are_not_changed():
    before = copy.deepcopy(TOOLS)
    required_schema()
    assert before == TOOLS


def test_a_schema_without_definitions_is_unchanged():
    [item] = forced_tool_schema([tool("weather", City)], "required")["items"]["anyOf"]
    assert item["properties"]["arguments"] == City.model_json_schema()


def test_xgrammar_compiles_it():
    xgrammar = pytest.importorskip("xgrammar")
    xgrammar.Grammar.from_json_schema(json.dumps(required_schema()))


def test_guidance_accepts_it():
    llguidance = pytest.importorskip("llguidance")
    grammar = llguidance.LLMatcher.grammar_from_json_schema(json.dumps(required_schema()))
    is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(grammar)
    assert not is_error and not messages, messages
