"""One API process of several (``--api-server-count``), started by the supervisor
(:mod:`openai_frontend.api_servers`) in a fresh interpreter: the same server as a lone
one, on its own ``SO_REUSEPORT`` socket of the shared port, with its share of the state.
"""

from __future__ import annotations

import argparse
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading

from openai_frontend.config import ServerConfig


def run(args: argparse.Namespace, config: ServerConfig, engine_extras: list[dict], port: int):
    """Serve until SIGTERM (the supervisor's, or its own when the supervisor is gone)."""
    # Its own process group: a terminal's Ctrl-C reaches the supervisor alone, which
    # sends each API process one SIGTERM (a second signal would skip uvicorn's drain).
    os.setpgrp()
    _stop_with_supervisor()
    from openai_frontend.api_servers import bound_socket
    from openai_frontend.cli import run_server, setup_logging
    from openai_frontend.metrics_multiprocess import forget_this_process

    setup_logging(args)
    sock = bound_socket(config.host, port)
    try:
        code = run_server(args, config, engine_extras, sockets=[sock])
    finally:
        forget_this_process()
    sys.exit(code)


def _stop_with_supervisor() -> None:
    """SIGTERM to this process (a drain) when the supervisor dies without sending one
    (SIGKILL, a crash): an API process never outlives it."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="supervisor-watch", daemon=True).start()
