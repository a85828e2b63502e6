"""vLLM's own Prometheus metrics (the ``vllm:`` set) for one in-process engine.

``AsyncLLM`` takes stat loggers; its default ``PrometheusStatLogger`` registers on
prometheus_client's global registry and unregisters every ``vllm:`` collector first, so
a second engine in the process (``--config``) would wipe the first one's. Here the same
logger class, unchanged in what it computes, registers on a registry of this engine's
own, which the gateway merges into its ``/metrics`` (each series carries vLLM's
``model_name`` label). Imports vLLM, so only the vLLM backend imports this module.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


def _on(registry: CollectorRegistry, metric: type) -> type:
    """``metric`` (Counter, Gauge, Histogram) registering on ``registry`` by default."""

    def __init__(self, *args, **kwargs):  # noqa: N807 (a method of the class built here)
        kwargs.setdefault("registry", registry)
        metric.__init__(self, *args, **kwargs)

    return type(metric.__name__, (metric,), {"__init__": __init__})


def stat_logger_on(registry: CollectorRegistry) -> type:
    """A ``PrometheusStatLogger`` class (an ``AsyncLLM`` stat-logger factory) whose
    metrics, its helpers' included (speculative decoding, KV and EC connectors, perf),
    register on ``registry``. Passing it also stops vLLM adding its global default."""
    from vllm.distributed.ec_transfer.ec_connector.metrics import ECConnectorProm
    from vllm.distributed.kv_transfer.kv_connector.v1.metrics import KVConnectorProm
    from vllm.v1.metrics.loggers import PrometheusStatLogger
    from vllm.v1.metrics.perf import PerfMetricsProm
    from vllm.v1.spec_decode.metrics import SpecDecodingProm

    bound = {
        "_gauge_cls": _on(registry, Gauge),
        "_counter_cls": _on(registry, Counter),
        "_histogram_cls": _on(registry, Histogram),
    }

    def helper(cls: type) -> type:
        return type(cls.__name__, (cls,), bound)

    return type(
        "PrometheusStatLogger",
        (PrometheusStatLogger,),
        {
            **bound,
            "_spec_decoding_cls": helper(SpecDecodingProm),
            "_kv_connector_cls": helper(KVConnectorProm),
            "_ec_connector_cls": helper(ECConnectorProm),
            "_perf_metrics_cls": helper(PerfMetricsProm),
        },
    )
