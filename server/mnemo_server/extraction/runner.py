"""ExtractionRunner: runs durable extraction jobs.

Jobs of one order key (Job.order_key: a user, else an agent, else a run) run
one at a time in the order they were accepted, so two conversations of one
user never plan against the same snapshot (no duplicate facts); different
keys run in parallel, at most `extraction.concurrency` at once. LLM calls run
in their own threads, never in the service's workers, so a hanging LLM slows
only extraction.

A job: RUNNING -> the LLM plans (retried with backoff on LLM errors; each
attempt counted in the row) -> the plan is stored -> one atomic write through
MemoryService.write with request id "extract-<job id>" (repeated with backoff
while it fails for a passing reason: the model or store unavailable, the disk
full) -> SUCCEEDED with its
outcomes, or FAILED with a stable reason and nothing written. After a crash
every PENDING and RUNNING job runs again: one with a stored plan skips the
LLM and repeats the same write, which the request id turns into a replay of
the first one's outcomes, so nothing is written twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, TypeVar

from mnemo_server.config import ExtractionSettings
from mnemo_server.errors import DeadlineExceededError, FailedPreconditionError, MnemoError
from mnemo_server.extraction.job_store import JobStore
from mnemo_server.extraction.planner import Planner, first_error
from mnemo_server.extraction.types import Job, JobSpec, PlannedFact, State
from mnemo_server.models import Principal, now_us
from mnemo_server.pagination import fingerprint
from mnemo_server.service import MemoryService

log = logging.getLogger("mnemo.extraction")
T = TypeVar("T")

#: Worth another try: the LLM (or the embedder) may answer next time.
RETRYABLE = frozenset({"LLM_UNAVAILABLE", "LLM_TIMEOUT", "LLM_OUTPUT_INVALID", "EMBEDDER_UNAVAILABLE"})
#: The write found a memory the LLM saw changed or gone: plan again.
REPLAN = frozenset({"ETAG_MISMATCH", "MEMORY_NOT_FOUND", "LINK_TARGET_NOT_FOUND"})


def transient_write_error(error: MnemoError) -> bool:
    """A write failure worth repeating: the model or the store unavailable for a
    moment, the disk full until an operator frees it. A lost data directory is
    not (the server refuses writes until restored), nor is any refusal of the
    facts themselves."""
    if error.reason == "STORAGE_FULL":
        return True
    return error.code == "UNAVAILABLE" and error.reason != "DATA_DIRECTORY_LOST"


def spec_fingerprint(spec: JobSpec) -> str:
    return fingerprint(
        [m.to_json() for m in spec.messages], spec.scope, spec.metadata, spec.mode.value, spec.request_id
    )


class ExtractionRunner:
    def __init__(
        self,
        *,
        service: MemoryService,
        jobs: JobStore,
        planner: Planner,
        settings: ExtractionSettings,
        executor: Executor,
        clock: Callable[[], int] = now_us,
    ) -> None:
        self.service = service
        self.jobs = jobs
        self.planner = planner
        self.settings = settings
        self.executor = executor
        self.clock = clock
        self._llm_pool = ThreadPoolExecutor(max_workers=settings.concurrency, thread_name_prefix="mnemo-llm")
        self._queues: dict[tuple[str, ...], deque[Job]] = {}
        self._drains: dict[tuple[str, ...], asyncio.Task[None]] = {}
        self._finished: dict[str, asyncio.Event] = {}
        #: Held while a job is stored and its queueing scheduled, so that jobs are
        #: queued in the order the store numbered them (seq), even when many
        #: submits of one scope race in the worker threads.
        self._submitting = threading.Lock()
        self._slots = asyncio.Semaphore(settings.concurrency)
        #: The longest one plan may take, all its LLM calls together (a safety net
        #: under the clients' own timeouts, for providers without one).
        self._plan_deadline_s = 2 * settings.timeout_s + 10

    async def _run_in(self, executor: Executor, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, functools.partial(fn, *args, **kwargs))

    async def start(self, *, resume: bool = True) -> int:
        """Queues every job a previous run left unfinished (unless not
        `resume`: in a fleet the leader does, see `resume`); returns how many."""
        return await self.resume() if resume else 0

    async def resume(self) -> int:
        """Queues every unfinished job not queued here yet; returns how many.
        In a fleet a job another worker is running may be queued again: its
        write carries the job's request id, so it is not written twice."""
        jobs = await self._run_in(self.executor, self.jobs.unfinished)
        jobs = [job for job in jobs if job.id not in self._finished]
        for job in jobs:
            self._enqueue(job)
        if jobs:
            log.info("extraction: resuming %d unfinished jobs", len(jobs))
        return len(jobs)

    async def submit(self, principal: Principal, spec: JobSpec) -> Job:
        """Stores a job and queues it; a request id seen before returns its job."""
        now = self.clock()
        job = Job(
            id=uuid.uuid4().hex,
            principal=principal,
            spec=spec,
            fingerprint=spec_fingerprint(spec),
            state=State.PENDING,
            create_time_us=now,
            update_time_us=now,
        )
        loop = asyncio.get_running_loop()

        def store_and_queue() -> tuple[Job, bool]:
            with self._submitting:
                stored, created = self.jobs.create(job)
                if created:
                    # Runs on the loop before this submit resumes (callbacks run in order).
                    loop.call_soon_threadsafe(self._enqueue, stored)
            return stored, created

        stored, created = await self._run_in(self.executor, store_and_queue)
        if not created:
            if stored.fingerprint != job.fingerprint:
                raise FailedPreconditionError(
                    f"request_id {spec.request_id!r} was already used for a different conversation",
                    reason="REQUEST_ID_REUSED",
                    metadata={"request_id": spec.request_id},
                )
            return stored
        return stored

    async def wait(self, job: Job, timeout_s: float) -> Job:
        """The job once finished, or as it is after `timeout_s`."""
        event = self._finished.get(job.id)
        if event is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), max(timeout_s, 0.0))
            if event.is_set() and job.state.finished:
                # The object this runner ran (submit queued it), as its last
                # update stored it: no need to read the row back.
                return job
        found = await self._run_in(self.executor, self.jobs.get, job.principal.tenant, job.id)
        return found or job

    async def stop(self) -> None:
        """Stops running jobs where they are; the next start runs them again."""
        tasks = list(self._drains.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        self._llm_pool.shutdown(wait=False, cancel_futures=True)

    def _enqueue(self, job: Job) -> None:
        key = job.order_key
        self._queues.setdefault(key, deque()).append(job)
        self._finished.setdefault(job.id, asyncio.Event())
        if key not in self._drains:
            self._drains[key] = asyncio.create_task(self._drain(key))

    async def _drain(self, key: tuple[str, ...]) -> None:
        queue = self._queues[key]
        try:
            while queue:
                job = queue[0]
                async with self._slots:
                    try:
                        await self._run(job)
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:  # a bug, not the LLM: fail the job, keep the runner
                        log.exception("extraction job %s failed unexpectedly", job.id)
                        await self._fail(job, MnemoError(f"internal error ({type(exc).__name__})"))
                queue.popleft()
                event = self._finished.pop(job.id, None)
                if event is not None:
                    event.set()
        finally:
            # No await between the empty check and here: an _enqueue cannot slip in.
            del self._drains[key]
            if not queue:
                del self._queues[key]

    async def _run(self, job: Job) -> None:
        while True:
            plan = job.plan
            if plan is None:
                plan = await self._plan(job)
                if plan is None:
                    return
            try:
                error = await self._write(job, plan)
            except MnemoError as exc:
                await self._fail(job, exc)
                return
            if error is None:
                return
            if error.reason in REPLAN and job.attempts <= self.settings.retries:
                log.info("extraction job %s: %s on write; planning again", job.id, error.reason)
                await self._run_in(self.executor, self.jobs.planned, job, None, self.clock())
                continue
            await self._fail(job, error)
            return

    def _apply(self, job: Job, plan: list[PlannedFact]) -> MnemoError | None:
        """One worker-thread step (one hand-off, not three): stores a new plan,
        makes its one atomic write and, when that succeeds, stores the outcome.
        The plan is committed before the write: after a crash the job repeats
        the same write, which its request id turns into a replay. Returns the
        error that failed the write (nothing written), else None (SUCCEEDED)."""
        if job.plan is None:
            try:
                self.jobs.planned(job, plan, self.clock())
            except BaseException:
                job.plan = None  # not stored: a retry must store it before writing
                raise
        ops = self.planner.ops(job, plan)
        outcomes = []
        if ops:
            outcomes = self.service.write(job.principal, ops, atomic=True, request_id=f"extract-{job.id}")
        error = first_error(outcomes)
        if error is not None:
            return error
        facts, revision = self.planner.results(plan, outcomes)
        self.jobs.succeeded(job, facts, revision, self.clock())
        log.info("extraction job %s: %d facts, revision %d", job.id, len(facts), revision)
        return None

    async def _write(self, job: Job, plan: list[PlannedFact]) -> MnemoError | None:
        """_apply, repeated with backoff while it fails for a reason that
        passes (transient_write_error); the request id turns a repeat of a
        write that did commit into a replay of its outcomes."""
        failures = 0
        while True:
            try:
                return await self._run_in(self.executor, self._apply, job, plan)
            except MnemoError as exc:
                failures += 1
                if not transient_write_error(exc) or failures > self.settings.retries:
                    raise
                delay = self.settings.retry_backoff_s * 2 ** (failures - 1)
                log.info(
                    "extraction job %s: write failed with %s (attempt %d); retrying in %.1f s",
                    job.id,
                    exc.reason,
                    failures,
                    delay,
                )
                await asyncio.sleep(delay)

    async def _plan(self, job: Job) -> list[PlannedFact] | None:
        """The LLM's plan, retried with backoff; None when the job failed."""
        while True:
            try:
                return await asyncio.wait_for(
                    self._run_in(self._llm_pool, self._attempt, job), self._plan_deadline_s
                )
            except TimeoutError:
                error: MnemoError = DeadlineExceededError(
                    f"the LLM did not answer within {self._plan_deadline_s:g} s", reason="LLM_TIMEOUT"
                )
            except MnemoError as exc:
                error = exc
            if error.reason not in RETRYABLE or job.attempts > self.settings.retries:
                await self._fail(job, error)
                return None
            delay = self.settings.retry_backoff_s * 2 ** (job.attempts - 1)
            log.info(
                "extraction job %s: %s (attempt %d); retrying in %.1f s",
                job.id,
                error.reason,
                job.attempts,
                delay,
            )
            await asyncio.sleep(delay)

    def _attempt(self, job: Job) -> list[PlannedFact]:
        """One LLM attempt, counted (RUNNING) first, in the LLM's thread: one hand-off."""
        self.jobs.started(job, self.clock())
        return self.planner.plan(job)

    async def _fail(self, job: Job, error: MnemoError) -> None:
        log.info("extraction job %s failed: %s %s", job.id, error.reason, error.message)
        await self._run_in(self.executor, self.jobs.failed, job, error.reason, error.message, self.clock())


def build_runner(
    settings: ExtractionSettings, *, service: MemoryService, jobs: JobStore, executor: Executor
) -> ExtractionRunner:
    """The runner of a server whose extraction is configured (mem0ai's client for the LLM)."""
    from mnemo_server.extraction.llm import Mem0Llm

    model = Mem0Llm(settings, data_dir=service.snapshot_dir.parent)
    return ExtractionRunner(
        service=service,
        jobs=jobs,
        planner=Planner(service, model, settings),
        settings=settings,
        executor=executor,
    )
