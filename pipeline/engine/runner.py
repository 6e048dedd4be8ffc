"""Run a stage's chunk tasks with Dask: on a local Dask cluster sized to the machine, or an existing one.

A stage builds one `dask.delayed` task per chunk (or tile batch); `run_tasks` computes them with a rich
progress bar. Where they run:

- `address` (or $RETOUCH_DASK_ADDRESS): the Dask cluster there.
- else scheduler 'cluster' (the default): one `distributed.LocalCluster` per process, started on first use
  and reused by every later stage: `workers` single-threaded workers (0 = one per core) inside this
  process, so the model is loaded once and torch gets one core per worker. It runs the same futures code
  path as a remote cluster (`--dask-address`).
- scheduler 'processes' ($RETOUCH_DASK_SCHEDULER=processes): the same LocalCluster with its workers as
  processes, each loading its own model (and, on a GPU, its own CUDA context), so the Python parts of the
  chunks do not share one interpreter; more memory, a longer start.
- scheduler 'threads' ($RETOUCH_DASK_SCHEDULER=threads): dask's thread pool, no scheduler at all and no
  start-up cost (the tests use it).

`Ledger` records each finished task under `<store>/_progress/<stage>/` so that a stage killed halfway
resumes with only the missing tasks.

What a long stage holds does not grow with its length: the local cluster's workers run without Dask's
statistical profiler (it keeps the stack samples of the last cycles, one per second, per worker, for a
dashboard this cluster does not start). Memory freed by a task is reused by the next from one heap and
handed back to the system when a stage's tasks end (`pipeline.engine.memory`).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import dask
from dask.callbacks import Callback
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from pipeline.engine.memory import keep_freed_memory, release_free_memory

DASK_ADDRESS_ENV = "RETOUCH_DASK_ADDRESS"
SCHEDULER_ENV = "RETOUCH_DASK_SCHEDULER"
SCHEDULERS = ("cluster", "processes", "threads")
MAX_WORKERS_PER_CORE = 4  # local workers a run may ask for, per core


def local_cores() -> int:
    """This machine's cores (1 when the system does not say)."""
    return os.cpu_count() or 1

# Someone watching (a Prefect flow's progress artifact): called with (label, done, total) as tasks finish.
ProgressListener = Callable[[str, int, int], None]
progress_listener: ContextVar[ProgressListener | None] = ContextVar("progress_listener", default=None)


def _default_scheduler() -> str:
    return os.environ.get(SCHEDULER_ENV) or "cluster"


@dataclass(frozen=True)
class EngineConfig:
    """How tasks run: on the cluster at `address`, else `workers` local workers (0 = one per core)."""

    workers: int = 0
    address: str | None = None
    progress: bool = True
    torch_threads: int = 0  # per worker; 0 = the cores shared out among the workers
    scheduler: str = field(default_factory=_default_scheduler)  # 'cluster', 'processes' or 'threads' (no address)

    def __post_init__(self) -> None:
        if self.workers < 0 or self.torch_threads < 0:
            raise ValueError(f"workers and torch_threads must be >= 0, got {self.workers}, {self.torch_threads}")
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {SCHEDULERS} (${SCHEDULER_ENV}), got {self.scheduler!r}")

    @property
    def n_workers(self) -> int:
        return self.workers or local_cores()

    def resolved_address(self) -> str | None:
        return self.address or os.environ.get(DASK_ADDRESS_ENV) or None


class _ProgressCallback(Callback):
    def __init__(self, advance: Callable[[], None], names: set[str]) -> None:
        super().__init__()
        self._advance = advance
        self._names = names

    def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, id: Any) -> None:  # noqa: A002
        name = key[0] if isinstance(key, tuple) else key
        if name in self._names:
            self._advance()


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
    )


def run_tasks(tasks: Sequence[Any], label: str, config: EngineConfig,
              cleanup: Callable[[], Any] | None = None) -> list[Any]:
    """Compute delayed `tasks` in parallel with a progress bar; results in task order.

    `cleanup` runs afterwards wherever the tasks ran (on every worker of a cluster), e.g. to drop caches.
    """
    if not tasks:
        return []
    keep_freed_memory()
    address = config.resolved_address()
    listener = progress_listener.get()
    with _progress(config.progress) as bar:
        job = bar.add_task(label, total=len(tasks))
        finished = [0]

        def advance() -> None:
            bar.advance(job)
            finished[0] += 1
            if listener is not None:
                listener(label, finished[0], len(tasks))
        if address or config.scheduler != "threads":
            from distributed import as_completed

            apart = bool(address) or config.scheduler == "processes"  # workers in processes of their own
            with _client(address, config) as client:
                if apart:
                    client.run(keep_freed_memory)
                futures = client.compute(list(tasks))
                try:
                    for _ in as_completed(futures, loop=client.loop):
                        advance()
                    return client.gather(futures)
                finally:  # on a failure, the tasks not yet started never start (a running one finishes its chunk)
                    client.cancel(futures)
                    if cleanup is not None:
                        client.run(cleanup)
                    if apart:
                        client.run(release_free_memory)
                    else:
                        release_free_memory()
        names = {t.key[0] if isinstance(t.key, tuple) else t.key for t in tasks}
        # our own pool, joined before returning or raising: no task still writes after a failure
        pool = ThreadPoolExecutor(max_workers=config.n_workers)
        try:
            with _ProgressCallback(advance, names):
                return list(dask.compute(*tasks, scheduler="threads", pool=pool))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            if cleanup is not None:
                cleanup()
            release_free_memory()


def _client(address: str | None, config: EngineConfig) -> Any:
    """A distributed Client of the scheduler at `address`, else of this process's LocalCluster; a malformed
    address is a ConfigError naming it (an unreachable one fails as OSError after the connect timeout)."""
    from distributed import Client

    from pipeline.errors import ConfigError

    if not address:
        return Client(local_cluster(config), set_as_default=False)
    try:
        return Client(address, set_as_default=False)
    except ValueError as exc:  # no port, an unknown scheme, a port that is not a number
        raise ConfigError(f"Dask scheduler address {address!r} (--dask-address or ${DASK_ADDRESS_ENV}): {exc}; "
                          "expected e.g. tcp://host:8786") from None


_clusters: dict[tuple[int, bool], Any] = {}
_clusters_lock = threading.Lock()


def local_cluster(config: EngineConfig) -> Any:
    """This process's LocalCluster for `config.workers`, worker threads or (scheduler 'processes') worker
    processes (started once, closed at exit)."""
    from distributed import LocalCluster

    keep_freed_memory()  # before the workers' threads first allocate; worker processes inherit it
    n, processes = config.n_workers, config.scheduler == "processes"
    key = (n, processes)
    with _clusters_lock:
        cluster = _clusters.get(key)
        if cluster is None or cluster.status.name != "running":
            logging.getLogger("distributed").setLevel(logging.WARNING)  # no per-worker INFO lines in the log
            # By default workers are threads of this process: one loaded model for all of them, smaller than
            # worker processes. No profiler: its history grows with the time the workers run.
            with dask.config.set({"distributed.worker.profile.enabled": False}):
                cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=processes,
                                       dashboard_address=None, silence_logs=logging.WARNING)
            _clusters[key] = cluster
            if len(_clusters) == 1:
                atexit.register(close_local_clusters)
        return cluster


def close_local_clusters() -> None:
    with _clusters_lock:
        for cluster in _clusters.values():
            cluster.close()
        _clusters.clear()
