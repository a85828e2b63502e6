"""deploy/ validated without a cluster: each object against its schema, and the pieces
against each other and against this gateway's own flags and drain.

Core objects (Deployment, Service, ConfigMap) meet Kubernetes' strict JSON schemas,
vendored under tests/fixtures/k8s/ (see its README for the source). The InferencePool
meets the openAPIV3Schema of its CRD in ../shared/k8s/, closed the way the API server's
strict field validation closes it: a field the schema does not declare is an error.
The CRD's CEL rules (x-kubernetes-validations) are not evaluated here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from openai_frontend.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S_SCHEMAS = ROOT / "tests" / "fixtures" / "k8s"
CRD_PATH = ROOT.parent / "shared" / "k8s" / "inference.networking.k8s.io_inferencepools.yaml"
CORE_SCHEMAS = {
    ("apps/v1", "Deployment"): "deployment-apps-v1.json",
    ("v1", "Service"): "service-v1.json",
    ("v1", "ConfigMap"): "configmap-v1.json",
}
#: uvicorn's timeout_graceful_shutdown is --drain-timeout plus this (openai_frontend/cli.py).
UVICORN_GRACE_PAST_DRAIN_S = 10
#: What llm-d's core-metrics-extractor reads from a vLLM pod by default.
VLLM_GAUGES = {
    "vllm:num_requests_waiting",
    "vllm:num_requests_running",
    "vllm:kv_cache_usage_perc",
    "vllm:lora_requests_info",
    "vllm:cache_config_info",
}


def _documents() -> list[dict]:
    return [
        document
        for path in sorted(DEPLOY.glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]


def _one(documents: list[dict], kind: str) -> dict:
    (found,) = [document for document in documents if document["kind"] == kind]
    return found


def _core_validator(api_version: str, kind: str) -> Draft202012Validator:
    definitions = json.loads((K8S_SCHEMAS / "_definitions.json").read_text())
    registry = Registry().with_resource(definitions["$id"], Resource.from_contents(definitions))
    schema = json.loads((K8S_SCHEMAS / CORE_SCHEMAS[api_version, kind]).read_text())
    return Draft202012Validator(schema, registry=registry)


def _closed(schema):
    """The CRD schema with every declared object closed to undeclared fields, as the API
    server's strict field validation treats it (unless it preserves unknown fields)."""
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    closed = {key: _closed(value) for key, value in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        closed["additionalProperties"] = False
    return closed


def _pool_validator(api_version: str) -> Draft202012Validator:
    crd = yaml.safe_load(CRD_PATH.read_text())
    group, version = api_version.split("/")
    assert crd["spec"]["group"] == group
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version and v["served"]]
    return Draft202012Validator(_closed(served["schema"]["openAPIV3Schema"]))


def _validator(document: dict) -> Draft202012Validator:
    if document["kind"] == "InferencePool":
        return _pool_validator(document["apiVersion"])
    return _core_validator(document["apiVersion"], document["kind"])


def _errors(document: dict) -> list[str]:
    return [
        f"{'.'.join(map(str, error.absolute_path))}: {error.message}"
        for error in _validator(document).iter_errors(document)
    ]


def _gateway_container(deployment: dict) -> dict:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def test_every_object_meets_its_schema():
    documents = _documents()
    kinds = sorted(document["kind"] for document in documents)
    assert kinds == ["ConfigMap", "Deployment", "InferencePool", "Service"]
    for document in documents:
        assert _errors(document) == [], document["kind"]


@pytest.mark.parametrize(
    ("kind", "breakage"),
    [
        ("Deployment", lambda d: d["spec"]["template"]["spec"].update(terminationGrace=60)),
        ("Deployment", lambda d: _gateway_container(d)["readinessProbe"].update(path="/x")),
        ("Service", lambda d: d["spec"]["ports"][0].update(port="eighty")),
        ("InferencePool", lambda d: d["spec"].update(targetPort=8000)),
        ("InferencePool", lambda d: d["spec"].pop("targetPorts")),
        ("InferencePool", lambda d: d["spec"]["endpointPickerRef"].update(failureMode="Open")),
    ],
)
def test_a_broken_manifest_is_refused(kind, breakage):
    """The validation can fail: a misspelt or misplaced field, a wrong type, a missing
    required field and a value outside an enum are each reported."""
    document = _one(_documents(), kind)
    breakage(document)
    assert _errors(document)


def test_the_gateway_args_are_real_flags():
    """The container runs `openai-frontend ARGS`: they must parse with this CLI."""
    args = _gateway_container(_one(_documents(), "Deployment"))["args"]
    parsed = build_parser().parse_args(args)
    assert parsed.command == "serve"
    assert parsed.host == "0.0.0.0"
    assert not parsed.protect_metrics, "the endpoint picker scrapes /metrics without a key"


def test_probes_stay_correct_while_draining():
    """Readiness is /health/ready (503 from SIGTERM on), liveness is /health; the drain fits
    in the grace period, and liveness cannot fail the pod before the drain is over."""
    deployment = _one(_documents(), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = _gateway_container(deployment)
    drain = build_parser().parse_args(container["args"]).drain_timeout
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain_window = pre_stop + drain + UVICORN_GRACE_PAST_DRAIN_S
    readiness, liveness = container["readinessProbe"], container["livenessProbe"]
    assert readiness["httpGet"]["path"] == "/health/ready"
    assert liveness["httpGet"]["path"] == "/health"
    assert pod["terminationGracePeriodSeconds"] > drain_window
    assert liveness["periodSeconds"] * liveness["failureThreshold"] > drain_window


def test_the_pieces_select_each_other():
    documents = _documents()
    deployment, service = _one(documents, "Deployment"), _one(documents, "Service")
    pool = _one(documents, "InferencePool")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    ports = {port["containerPort"] for port in _gateway_container(deployment)["ports"]}
    assert pool["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert {port["number"] for port in pool["spec"]["targetPorts"]} <= ports
    # core-metrics-extractor maps a pod to its engine's metric names by this label.
    assert pod_labels["llm-d.ai/engine-type"] == "vllm"


def test_the_endpoint_picker_reads_the_vllm_gauges():
    config = yaml.safe_load(_one(_documents(), "ConfigMap")["data"]["config.yaml"])
    assert config["kind"] == "EndpointPickerConfig"
    plugins = {plugin.get("name", plugin["type"]): plugin for plugin in config["plugins"]}
    source = plugins["metrics-data-source"]["parameters"]
    assert source["path"] == "/metrics"
    assert set(source["families"]) == VLLM_GAUGES
    (wiring,) = config["dataLayer"]["sources"]
    assert wiring["pluginRef"] == "metrics-data-source"
    assert [e["pluginRef"] for e in wiring["extractors"]] == ["core-metrics-extractor"]
    for profile in config["schedulingProfiles"]:
        assert {ref["pluginRef"] for ref in profile["plugins"]} <= plugins.keys()
