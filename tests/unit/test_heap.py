"""The worker's cyclic-collector settings: young passes often, full ones on a timer."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from vpop.server import worker


class Node:
    def __init__(self):
        self.other = self


@pytest.fixture
def restored_gc():
    thresholds = gc.get_threshold()
    yield
    gc.set_threshold(*thresholds)
    gc.unfreeze()


def test_a_cycle_in_the_oldest_generation_is_reclaimed_by_the_timer(restored_gc, monkeypatch):
    worker.settle_heap()
    cycle = Node()
    alive = weakref.ref(cycle)
    gc.collect(1)  # still referenced: moved to the oldest generation, as long-lived
    del cycle  # objects are, and unreachable only now
    gc.collect(1)  # young and middle passes do not look there
    assert alive() is not None

    monkeypatch.setattr(worker, "FULL_COLLECTION_INTERVAL", 0.01)

    async def a_while():
        task = asyncio.ensure_future(worker.collect_cycles())
        await asyncio.sleep(0.2)
        task.cancel()
    asyncio.run(a_while())
    assert alive() is None
