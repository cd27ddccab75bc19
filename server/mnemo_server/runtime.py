"""What a loaded server runs in the background, and how it winds down.

Once the service has loaded, `Runtime.start` starts three loops, each a task
on the event loop that does its blocking work in the worker pool:

- upkeep every `server.sweep_interval_s` (TTL expiry, retention, ... see
  `MemoryService.upkeep`); a failure is logged and retried next time;
- the data-directory watch every `server.storage_check_interval_s`: once the
  directory is lost, health turns NOT_SERVING for good (writes refuse
  themselves at the store);
- an index snapshot every `index.snapshot_interval_s` (when above 0) if the
  store's revision moved; none once the data directory is lost.

The App (app.py) stops them in this order: the gRPC server first (calls
drain), then `stop_loops`, then `final_flush` (retrieval times), then
`final_snapshot`, then `close` the components
(embedder, store, caches).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from typing import Any

from mnemo_server.config import Settings
from mnemo_server.errors import MnemoError
from mnemo_server.fleet.leader import AlwaysLeader, FleetLock
from mnemo_server.service import MemoryService
from mnemo_server.storage import DataDirectoryWatch

log = logging.getLogger("mnemo.app")


class Runtime:
    """The background loops of one loaded service."""

    def __init__(
        self,
        settings: Settings,
        executor: Executor,
        service: MemoryService,
        storage: DataDirectoryWatch | None,
        *,
        on_storage_lost: Callable[[], Awaitable[None]],
        lock: FleetLock | None = None,
        on_lead: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.settings = settings
        self.executor = executor
        self.service = service
        self.storage = storage
        self._on_storage_lost = on_storage_lost
        self._tasks: list[asyncio.Task[Any]] = []
        self.lock: FleetLock = lock or AlwaysLeader()
        self._on_lead = on_lead
        #: Whether this process runs the shared background work now.
        self.leading = isinstance(self.lock, AlwaysLeader)

    async def _check_lead(self) -> bool:
        """Takes the lead when it is free (its holder stopped or died)."""
        # In a thread: a lock in PostgreSQL (fleet/pg_leader.py) is a round trip.
        leads = await asyncio.get_running_loop().run_in_executor(self.executor, self.lock.try_lead)
        if not leads and self.leading and not isinstance(self.lock, AlwaysLeader):
            self.leading = False  # its session was lost: another replica may lead now
            log.warning("process %d no longer leads the background work", os.getpid())
        if leads and not self.leading:
            self.leading = True
            if not isinstance(self.lock, AlwaysLeader):
                log.info("process %d leads the background work (expiry, retention, snapshots)", os.getpid())
            if self._on_lead is not None:
                await self._on_lead()
        return leads

    def start(self) -> None:
        """Starts the loops (in the running event loop). In a fleet only the
        leader (`lock`) runs expiry, retention, compaction and snapshots; the
        others catch up and record retrieval times, and try for the lead at
        every sweep, so a survivor takes over within `sweep_interval_s` of the
        leader's death."""
        self._tasks.append(asyncio.create_task(self._sweep_loop()))
        self._tasks.append(asyncio.create_task(self._storage_loop()))
        if self.settings.index.snapshot_interval_s > 0:
            self._tasks.append(asyncio.create_task(self._snapshot_loop()))

    async def stop_loops(self) -> None:
        """Cancels the loops and waits until each has ended."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        self._tasks.clear()

    def storage_lost(self) -> bool:
        return self.storage is not None and self.storage.lost is not None

    async def final_flush(self) -> None:
        """The retrieval times searches noted since the last upkeep, written
        down (upkeep writes them every sweep interval)."""
        if self.storage_lost():
            return
        try:
            await asyncio.get_running_loop().run_in_executor(self.executor, self.service.flush_retrieved)
        except Exception:
            log.exception("retrieval times not written at shutdown")

    async def final_snapshot(self) -> None:
        """The index as of now, so the next start need not replay the revision log."""
        loop = asyncio.get_running_loop()
        if self.storage_lost():
            log.warning("no final index snapshot: the data directory is lost")
            return
        if not self.leading:
            return  # the leader writes the fleet's snapshots
        try:
            await loop.run_in_executor(self.executor, self.service.snapshot)
        except Exception:
            log.exception("final snapshot failed; the next start replays the revision log")
        finally:
            self.lock.release()

    async def _sweep_loop(self) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(Exception):
            await self._check_lead()  # at once: the extraction jobs to resume wait for it
        while True:
            await asyncio.sleep(self.settings.server.sweep_interval_s)
            try:
                lead = await self._check_lead()
                upkeep = functools.partial(self.service.upkeep, lead=lead)
                done = await loop.run_in_executor(self.executor, upkeep)
                if any(done.values()):
                    log.info("upkeep: %s", ", ".join(f"{k} {v}" for k, v in done.items() if v))
            except Exception:
                log.exception("upkeep failed; will retry")

    async def _storage_loop(self) -> None:
        """Calls `on_storage_lost` once the data directory is lost."""
        loop = asyncio.get_running_loop()
        if self.storage is None:
            return
        while await loop.run_in_executor(self.executor, self.storage.poll) is None:
            await asyncio.sleep(self.settings.server.storage_check_interval_s)
        await self._on_storage_lost()

    async def _snapshot_loop(self) -> None:
        loop = asyncio.get_running_loop()
        last = -1
        while True:
            await asyncio.sleep(self.settings.index.snapshot_interval_s)
            try:
                if self.storage_lost():
                    return
                if not self.leading:
                    continue
                if self.service.store.current_revision() != last:
                    info = await loop.run_in_executor(self.executor, self.service.snapshot)
                    last = info.revision
                    log.info("index snapshot at revision %d (%d bytes)", info.revision, info.bytes)
            except MnemoError as exc:  # a full disk: said once by storage, no traceback needed
                log.warning("snapshot failed (%s); will retry", exc.reason)
            except Exception:
                log.exception("snapshot failed; will retry")


async def close_components(executor: Executor, components: Sequence[Any]) -> None:
    """Closes each component in the worker pool, in order; a failure does not stop the rest."""
    loop = asyncio.get_running_loop()
    for component in components:
        with contextlib.suppress(Exception):
            await loop.run_in_executor(executor, component.close)
