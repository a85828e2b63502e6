"""The heap start-up built is frozen once the model is ready, so full collections under
load walk only what requests create (see ``gc_pause.freeze_start_up_heap``)."""

from __future__ import annotations

import asyncio
import gc

from fault_engines import FaultInjectingEngine, in_process_client


def test_the_start_up_heap_is_frozen_once_the_model_is_ready() -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0

    async def run() -> int:
        async with in_process_client(FaultInjectingEngine(tokens_before_fault=2)) as client:
            assert (await client.get("/health/ready")).status_code == 200
            return gc.get_freeze_count()

    try:
        assert asyncio.run(run()) > 0
    finally:
        gc.unfreeze()
