"""Pydantic request schemas: the API boundary where types and ranges are checked."""
