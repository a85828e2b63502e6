"""Vendor the few Kubernetes JSON schemas that tests/unit/test_deploy_manifests.py needs.

The source is the ``kubernetes-validate`` wheel from PyPI (Apache-2.0), which ships
strict JSON schemas generated from Kubernetes' own OpenAPI document (``local-strict``:
unknown fields are refused, as ``kubectl apply --validate=strict`` does). Its
``_definitions.json`` is 1.5 MB, so only the definitions the vendored kinds reach are
kept, and their prose descriptions are dropped. Run it again to move to another
Kubernetes version::

    pip download --no-deps kubernetes-validate==1.37.0 -d /tmp/kv
    unzip -q /tmp/kv/kubernetes_validate-*.whl -d /tmp/kv/x
    python scripts/vendor_k8s_schemas.py \
        /tmp/kv/x/kubernetes_validate/kubernetes-json-schema/v1.34.0-local-strict
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

KINDS = ("deployment-apps-v1.json", "service-v1.json", "configmap-v1.json")
TARGET = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "k8s"
DEFS_PREFIX = "#/$defs/"


def _without_descriptions(node):
    """The schema minus its prose: a ``description`` keyword is a string; a property
    named ``description`` is a schema (a dict) and stays."""
    if isinstance(node, dict):
        return {
            key: _without_descriptions(value)
            for key, value in node.items()
            if not (key == "description" and isinstance(value, str))
        }
    if isinstance(node, list):
        return [_without_descriptions(value) for value in node]
    return node


def _refs(node) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"].split(DEFS_PREFIX)[-1]} if "$ref" in node else set()
        return found.union(*(_refs(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(value) for value in node))
    return set()


def main(source: Path) -> None:
    definitions = json.loads((source / "_definitions.json").read_text())
    kinds = {name: json.loads((source / name).read_text()) for name in KINDS}
    todo, kept = set().union(*(_refs(schema) for schema in kinds.values())), set()
    while todo:
        name = todo.pop()
        kept.add(name)
        todo |= _refs(definitions["$defs"][name]) - kept
    subset = {**definitions, "$defs": {name: definitions["$defs"][name] for name in sorted(kept)}}
    TARGET.mkdir(parents=True, exist_ok=True)
    for name, schema in {**kinds, "_definitions.json": subset}.items():
        text = json.dumps(_without_descriptions(schema), indent=1, sort_keys=True)
        (TARGET / name).write_text(text + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
