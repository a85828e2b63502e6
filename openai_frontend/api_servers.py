"""``--api-server-count N``: N API processes on one port, over one engine.

The process started by the command becomes a supervisor: it serves no request itself.
How the state of one server is shared, or divided, among its API processes:

- **Port**: each API process listens on its own socket bound to the port with
  ``SO_REUSEPORT``; the kernel spreads new connections over them (by a hash of the
  client's address and port). The supervisor holds the port bound, not listening.
- **Engine**: ``vllm`` runs one engine core, launched here with vLLM's own machinery
  (engines.vllm_shared); each API process is one of its ZMQ clients, as the API servers
  of ``vllm serve --api-server-count`` are. ``remote`` and ``synthetic`` have nothing to
  share: each process builds its engine (the remote one its own upstream connections).
- **Admission limits** are divided: ``--max-concurrent-requests`` and
  ``--max-queued-requests`` are split into N shares differing by at most one, the
  first processes taking the remainder (so the totals are the flags' values).
  ``--max-concurrent-requests`` must be at least N.
- **LoRA**: ``--enable-lora-management`` and ``--lora-on-demand`` are refused at start
  (a load would reach one process only); on ``vllm`` adapters are refused altogether.
- **Responses store**: one SQLite file in WAL mode, written by every process (each write
  its own ``IMMEDIATE`` transaction, the size limit read in it). Background responses
  left unfinished by an earlier run are marked failed once, here, before any process
  starts. A background response runs in the process that created it; a cancel that
  reaches another process is a 409. Batches left unfinished resume in API process 0.
- **Metrics**: prometheus_client's multiprocess mode (a temporary
  ``PROMETHEUS_MULTIPROC_DIR`` per run): any process's ``/metrics`` is the sum of all
  (:mod:`openai_frontend.metrics_multiprocess`).
- **Stopping**: SIGTERM or SIGINT here sends SIGTERM to every API process, and each
  drains (``--drain-timeout``); then the engine stops. An API process or an engine
  process that exits on its own stops the others, and the supervisor exits 1, for its
  own supervisor (systemd, Kubernetes) to restart the whole.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import multiprocessing
import os
import signal
import socket
import sys
import tempfile
from collections.abc import Iterator, Sequence
from multiprocessing.connection import wait

from engines import share_engine
from engines.shared import SharedEngine
from openai_frontend.config import ServerConfig

log = logging.getLogger(__name__)

#: Seconds past the drain an API process may take to exit before it is killed.
EXIT_MARGIN_S = 15.0


def refusal(config: ServerConfig) -> str | None:
    """Why this configuration cannot run as several API processes, or None."""
    count = config.api_server_count
    if config.enable_lora_management:
        return "--enable-lora-management needs one API process: a load would reach one only"
    if config.lora_on_demand:
        return "--lora-on-demand needs one API process: each would load its own copy"
    limit = config.max_concurrent_requests
    if limit is not None and limit < count:
        return f"--max-concurrent-requests {limit} cannot be divided among {count} API processes"
    return None


def share_of(limit: int | None, index: int, count: int) -> int | None:
    """API process ``index``'s share of ``limit``: equal shares, the remainder to the
    first processes, so the shares add up to ``limit``."""
    if limit is None:
        return None
    return limit // count + (1 if index < limit % count else 0)


def process_config(config: ServerConfig, index: int) -> ServerConfig:
    """API process ``index``'s settings: the server's, with its share of the limits."""
    count = config.api_server_count
    return dataclasses.replace(
        config,
        api_server_index=index,
        max_concurrent_requests=share_of(config.max_concurrent_requests, index, count),
        max_queued_requests=share_of(config.max_queued_requests, index, count),
    )


def bound_socket(host: str, port: int, reuse_port: bool = True) -> socket.socket:
    """A TCP socket bound to (host, port) with ``SO_REUSEPORT``, not yet listening."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    return sock


def reserve_port(host: str, port: int) -> socket.socket:
    """The port, held for the API processes. Bound once without ``SO_REUSEPORT`` first,
    so a port another server holds is refused (EADDRINUSE) instead of silently shared
    with it, as ``SO_REUSEPORT`` alone would allow."""
    with bound_socket(host, port, reuse_port=False) as probe:
        port = probe.getsockname()[1]
    return bound_socket(host, port)


@contextlib.contextmanager
def multiprocess_metrics() -> Iterator[str]:
    """A fresh ``PROMETHEUS_MULTIPROC_DIR`` for this run, which the API processes
    inherit (set before they import prometheus_client), removed at the end."""
    with tempfile.TemporaryDirectory(prefix="openai-frontend-metrics-") as directory:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        try:
            yield directory
        finally:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)


def supervise(args: argparse.Namespace, config: ServerConfig) -> int:
    """Run ``config.api_server_count`` API processes until stopped; the exit status."""
    from openai_frontend.adapters import lora_enabled
    from openai_frontend.cli import engine_kwargs, model_configs

    problem = refusal(config)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        models = model_configs(args, config)
        _sweep_store(config)
        placeholder = reserve_port(config.host, config.port)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    port = placeholder.getsockname()[1]
    count = config.api_server_count
    with placeholder, multiprocess_metrics():
        shared: list[SharedEngine] = []
        processes: list = []
        try:
            for model in models:
                kwargs = engine_kwargs(model, lora_enabled(model))
                shared.append(share_engine(model.engine, count, **kwargs))
            processes = _spawn(args, config, port, shared)
            stopper = _Stopper(processes)
            for engine in shared:
                engine.started(processes)
            log.info("%d API processes serving on port %d", count, port)
            return stopper.wait([s for engine in shared for s in engine.sentinels()])
        except ValueError as exc:  # an engine refused its arguments before launching
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except RuntimeError as exc:  # vLLM's start-up barrier: a process exited first
            print(f"error: the engine did not start: {exc}", file=sys.stderr)
            return 1
        finally:
            _stop_all(processes, config.drain_timeout + EXIT_MARGIN_S)
            for engine in shared:
                engine.shutdown(timeout=config.drain_timeout)


def _sweep_store(config: ServerConfig) -> None:
    """Open the responses store once alone: background responses an earlier run left
    unfinished are marked failed now, never by an API process while a sibling runs
    them (the API processes open it ``shared``)."""
    from openai_frontend.responses.store import open_store

    open_store(config.response_store, config.responses_ttl, config.responses_max_bytes).close()


def _spawn(
    args: argparse.Namespace, config: ServerConfig, port: int, shared: list[SharedEngine]
) -> list:
    """Start the API processes (``spawn``: none inherits this process's state)."""
    from openai_frontend.api_worker import run

    context = multiprocessing.get_context("spawn")
    processes = []
    for index in range(config.api_server_count):
        extras = [engine.client_kwargs(index) for engine in shared]
        process = context.Process(
            target=run,
            args=(args, process_config(config, index), extras, port),
            name=f"ApiServer_{index}",
        )
        process.start()
        processes.append(process)
    return processes


class _Stopper:
    """Signals to the supervisor become SIGTERM to every API process (each drains);
    an API process or engine process that exits on its own stops the rest."""

    def __init__(self, processes: Sequence) -> None:
        self._processes = processes
        self.requested = False
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, _frame: object) -> None:
        log.info("signal %d: draining the API processes", signum)
        self.requested = True
        _terminate(self._processes)

    def wait(self, engine_sentinels: list) -> int:
        """Until every API process has exited: 0 when all stopped cleanly on request."""
        failed = False
        pending = {process.sentinel: process for process in self._processes}
        engines = set(engine_sentinels)
        while pending:
            for ready in wait([*pending, *engines]):
                if ready in engines:
                    log.error("the engine's process exited; stopping the API processes")
                    engines.discard(ready)
                    failed = True
                    _terminate(self._processes)
                    continue
                process = pending.pop(ready)
                process.join()
                if process.exitcode != 0 or not self.requested:
                    log.error("%s exited (%s); stopping the others", process.name, process.exitcode)
                    failed = True
                    _terminate(self._processes)
        return 1 if failed or not self.requested else 0


def _terminate(processes: Sequence) -> None:
    for process in processes:
        if process.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)


def _stop_all(processes: Sequence, timeout: float) -> None:
    """Whatever still runs (a failed start): SIGTERM, then SIGKILL past ``timeout``."""
    _terminate(processes)
    for process in processes:
        process.join(timeout)
        if process.is_alive():
            process.kill()
            process.join()
