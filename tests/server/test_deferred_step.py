"""udp.step: a deferred coroutine run to its end on the event loop without a Task."""

from __future__ import annotations

import asyncio

import pytest

from vpop.server.udp import step


def run(coroutine_function, *settle):
    """The coroutine stepped on a loop; each of `settle` is called on the loop after
    the first step (to complete what it waits for). Returns finished's outcome()."""
    async def main():
        loop = asyncio.get_running_loop()
        finished = loop.create_future()
        step(coroutine_function(loop), finished.set_result)
        for action in settle:
            await asyncio.sleep(0)
            action()
        return (await finished)()
    return asyncio.run(main())


def test_a_coroutine_that_does_not_wait_finishes_at_once():
    async def known(loop):
        return "cached"
    assert run(known) == "cached"


def test_each_future_awaited_resumes_it():
    held = []

    async def two_waits(loop):
        first = loop.create_future()
        held.append(first)
        a = await first
        second = loop.run_in_executor(None, lambda: a * 2)  # a thread's future too
        b = await second
        await asyncio.sleep(0)  # a bare yield: the next turn of the loop
        return a + b
    assert run(two_waits, lambda: held[0].set_result(21)) == 63


def test_an_exception_reaches_the_outcome():
    held = []

    async def fails(loop):
        future = loop.create_future()
        held.append(future)
        await future
    with pytest.raises(ConnectionError, match="gone"):
        run(fails, lambda: held[0].set_exception(ConnectionError("gone")))
