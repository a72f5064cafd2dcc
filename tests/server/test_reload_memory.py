"""A reload lets go of what it replaced: after SIGHUPs a worker holds one subscriber
snapshot, the one it serves, never the start's or an earlier reload's beside it."""

import asyncio
import os
import signal
import weakref

from vpop import provisioning
from vpop.config import (AccountingSettings, DatabaseSettings, IdentificationSettings,
                         LoggingSettings, MetricsSettings, ServerSettings, Settings)
from vpop.server.worker import Worker
from vpop.store.demo import demo_plan_path
from vpop.store.engine import make_sessionmaker


def settings(db_url: str) -> Settings:
    return Settings(
        server=ServerSettings(listen=("127.0.0.1",), auth_port=0, acct_port=0, coa_port=0),
        database=DatabaseSettings(url=db_url), accounting=AccountingSettings(journal=""),
        logging=LoggingSettings(requests=False), metrics=MetricsSettings(port=0))


async def until(condition, task: asyncio.Task) -> None:
    while not condition():
        assert not task.done(), f"the worker stopped: {task.exception()!r}"
        await asyncio.sleep(0.01)


def test_a_reload_frees_the_snapshot_it_replaced(engine, db_url):
    with make_sessionmaker(engine).begin() as session:  # subscribers, caller IDs, lines
        provisioning.import_file(session, demo_plan_path(), env={}, iterations=10,
                                 identification=IdentificationSettings(country_code="49"))
    worker = Worker(settings(db_url))

    async def reloads(count: int) -> list[bool]:
        task = asyncio.ensure_future(worker._main(None))
        # stopping is made just before the signal handlers, with no wait between
        await until(lambda: worker.stopping is not None, task)
        served = []
        for _ in range(count):
            served.append(weakref.ref(worker.receiver.deps.directory))
            os.kill(os.getpid(), signal.SIGHUP)
            await until(lambda: worker.receiver.deps.directory is not served[-1]()
                        and not worker._loading.locked(), task)
        assert worker.receiver.deps.directory.by_name("alice") is not None  # the demo's
        alive = [ref() is not None for ref in served]
        worker.stopping.set()
        await task
        return alive

    assert asyncio.run(reloads(3)) == [False, False, False]
