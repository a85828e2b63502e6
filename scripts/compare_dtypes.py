"""What float32 costs: our server in float32 against bfloat16, same model, one run.

The default model is served in float32 on CPU because bfloat16 answers wrongly on some
CPUs (AMX). This measures the price: two ``openai-frontend serve`` processes on the
same folder, one per dtype, both up for the whole run and loaded one at a time, with
the identical ``openai-frontend bench`` load interleaved (A, B, B, A, ...) so machine
noise hits both: streaming chat, 128 output tokens with ignore_eos, at each
concurrency. Prints medians over rounds and the ratios float32 / bfloat16
(compare_vllm_serve.py's table, with the two dtypes as its sides).

    .venv/bin/python scripts/compare_dtypes.py [--concurrency 1,8,32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from compare_vllm_serve import parse_args, print_table, run_interleaved, start  # noqa: E402

from engines.builds import apply_cpu_defaults, is_cpu_build  # noqa: E402
from openai_frontend.default_model import MODEL_NAME, ensure_default_model  # noqa: E402

SIDES = ("bfloat16", "float32")


def serve(model: Path, dtype: str, port: int):
    return start(
        dtype,
        [
            *(sys.executable, "-m", "openai_frontend", "serve", str(model)),
            *("--served-model-name", MODEL_NAME, "--port", str(port), "--dtype", dtype),
            *("--log-level", "warning"),
        ],
    )


async def main(args: argparse.Namespace) -> None:
    model = ensure_default_model()
    ports = {dtype: args.port + i for i, dtype in enumerate(SIDES)}
    processes = {dtype: serve(model, dtype, port) for dtype, port in ports.items()}
    ready = dict.fromkeys(SIDES, "/health/ready")
    print_table(await run_interleaved(model, processes, ports, ready, args), args, SIDES)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if is_cpu_build():
        apply_cpu_defaults()  # both servers inherit the same CPU engine settings
    asyncio.run(main(parse_args(__doc__, port=8140)))
