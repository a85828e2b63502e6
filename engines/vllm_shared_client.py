"""An API process's side of a vLLM engine core shared by several (``--api-server-count``):
``AsyncLLM`` as a ZMQ client of the core the supervisor launched (engines.vllm_shared),
exactly as each API server of ``vllm serve --api-server-count N`` builds its own.
Imports vLLM, so only the vLLM backend imports this module (when its engine starts).
"""

from __future__ import annotations


def connect_shared_core(arguments, client: dict, stat_loggers: list):
    """``AsyncLLM`` for API process ``client["client_index"]`` of ``client_count``,
    connected through the ZMQ listeners in ``client`` (vLLM's client addresses)."""
    from vllm.usage.usage_lib import UsageContext
    from vllm.v1.engine.async_llm import AsyncLLM

    addresses = dict(client)
    count = addresses.pop("client_count")
    index = addresses.pop("client_index")
    # vLLM's own multi-API-server path sets these before the config (its parallel
    # config knows how many front-ends share the core, and which one this is).
    arguments._api_process_count = count
    arguments._api_process_rank = index
    # The usage context of our single-process path (AsyncLLM.from_engine_args's
    # default), so the shared core runs with the defaults a lone one would.
    vllm_config = arguments.create_engine_config(UsageContext.ENGINE_CONTEXT)
    return AsyncLLM.from_vllm_config(
        vllm_config,
        stat_loggers=stat_loggers,
        enable_log_requests=arguments.enable_log_requests,
        disable_log_stats=arguments.disable_log_stats,
        client_addresses=addresses,
        client_count=count,
        client_index=index,
    )
