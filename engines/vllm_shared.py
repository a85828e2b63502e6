"""One vLLM engine core for several API processes (``--api-server-count``), launched the
way ``vllm serve --api-server-count N`` launches it (vllm/entrypoints/cli/serve.py,
``run_multi_api_server``): the supervisor binds the ZMQ listeners of N front-ends
(``bind_engine_zmq_listeners``), starts the core (``launch_core_engines``), hands each
API process its listeners, then waits on vLLM's start-up handshake. No IPC of our own.
Imports vLLM, so it is imported by name (engines.share_engine) only.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack

from engines.builds import apply_cpu_defaults, is_cpu_build, pooling_engine_env
from engines.vllm import VLLMEngine

#: Why LoRA is refused with several API processes on this backend: the zero adapter
#: (engines.vllm_zero_lora) and the adapters' slots are each process's own bookkeeping.
NO_LORA = (
    "LoRA adapters are not supported with --api-server-count > 1 on the vllm engine "
    "(each API process would keep its own adapter slots); use one API process"
)


class VLLMSharedCore:
    """The engine core (and vLLM's DP coordinator, if any) that ``count`` API processes
    share; each API process's :class:`VLLMEngine` gets ``client=`` its part."""

    def __init__(self, count: int, **engine_kwargs: object) -> None:
        from vllm.usage.usage_lib import UsageContext
        from vllm.v1.engine.utils import bind_engine_zmq_listeners, launch_core_engines
        from vllm.v1.executor import Executor

        if engine_kwargs.get("enable_lora"):
            raise ValueError(NO_LORA)
        if is_cpu_build():
            apply_cpu_defaults()  # the engine core process inherits the environment
        engine = VLLMEngine(**engine_kwargs)
        arguments = engine.async_engine_args()
        arguments._api_process_count = count
        arguments._api_process_rank = -1  # the launcher, as vLLM's own
        config = arguments.create_engine_config(UsageContext.ENGINE_CONTEXT)
        self._count = count
        self._listeners = bind_engine_zmq_listeners(config, count)
        self._starting = ExitStack()
        try:
            if engine.runner == "pooling":
                self._starting.enter_context(pooling_engine_env(is_cpu_build()))
            launching = launch_core_engines(
                config,
                Executor.get_class(config),
                not arguments.disable_log_stats,
                self._listeners.addresses,
            )
            self._launch = self._starting.enter_context(launching)
        except BaseException:
            self._cleanup_listeners()
            raise

    def client_kwargs(self, index: int) -> dict:
        """API process ``index``'s ZMQ listeners (as APIServerProcessManager hands them)."""
        client = {
            "input_address": self._listeners.inputs[index].address,
            "output_address": self._listeners.outputs[index].address,
            "input_listener": self._listeners.inputs[index].socket,
            "output_listener": self._listeners.outputs[index].socket,
            "client_count": self._count,
            "client_index": index,
        }
        coordinator = self._launch.coordinator
        if coordinator is not None:
            client["stats_update_address"] = coordinator.get_stats_publish_address()
        return {"client": client}

    def started(self, processes: Sequence) -> None:
        """Close this process's copies of the listeners (the API processes hold theirs),
        then vLLM's start-up barrier: until the core is ready, failing if the core or
        an API process exits first."""
        for listener in (*self._listeners.inputs, *self._listeners.outputs):
            listener.close()
        self._launch.watched_frontend_processes = list(processes)
        self._starting.close()

    def sentinels(self) -> list:
        manager = self._launch.engine_manager
        watched = list(manager.sentinels()) if hasattr(manager, "sentinels") else []
        if self._launch.coordinator is not None:
            watched.append(self._launch.coordinator.proc.sentinel)
        return watched

    def shutdown(self, timeout: float) -> None:
        try:
            if self._launch.engine_manager is not None:
                self._launch.engine_manager.shutdown(timeout=timeout)
            if self._launch.coordinator is not None:
                self._launch.coordinator.shutdown(timeout=timeout)
        finally:
            self._cleanup_listeners()

    def _cleanup_listeners(self) -> None:
        for listener in (*self._listeners.inputs, *self._listeners.outputs):
            listener.cleanup()
