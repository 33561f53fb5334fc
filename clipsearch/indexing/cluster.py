"""`index --ray`: the files to embed go to Ray actors; their vectors stream back to this process, the one writer.

Ray core actors rather than Ray Data: the driver must bound what is in flight (each chunk is marked in the
catalogue's in_flight table before it leaves, so a killed driver loses at most those), ship file bytes from
its own disk when asked, and see every result as it arrives. An actor that dies (its process, or its node)
is restarted by Ray and its chunk run again, so every file comes back exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from clipsearch.errors import ModelError, UsageError
from clipsearch.indexing.cluster_worker import EmbeddingWorker, WorkItem
from clipsearch.indexing.prepare import Prepared, Task, read_task
from clipsearch.models.identity import ModelIdentity

log = logging.getLogger(__name__)

CHUNK_FILES = {"cpu": 32, "gpu": 256}  # files per actor call: a model batch
CPUS_PER_CPU_ACTOR = 2  # decoding threads and torch threads of an actor without a GPU
CALLS_IN_FLIGHT = 2  # per actor: one running, one queued, so no actor waits for the driver


@dataclass(frozen=True)
class RayOptions:
    address: str  # "local" starts Ray here, "auto" joins `ray start`'s cluster, else a cluster address
    ship_bytes: bool = False  # the driver reads the files and sends their bytes
    actors: int | None = None  # default: one per GPU, else one per node's worth of CPUs (at least 1)
    cpus_per_actor: int | None = None


def import_ray():
    try:
        import ray
    except ImportError:
        raise UsageError("--ray needs Ray: pip install \"clipsearch[ray]\" (or pip install \".[ray]\" in a "
                         "checkout)") from None
    return ray


class RaySession:
    """A connection to a Ray cluster and a pool of embedding actors, closed with the session."""

    def __init__(self, options: RayOptions, identity: ModelIdentity, device: str, precision: str,
                 known: frozenset[str]) -> None:
        self.ray = import_ray()
        self.options = options
        self._owns_ray = False
        self._connect()
        gpus = int(self.ray.cluster_resources().get("GPU", 0))
        cpus = int(self.ray.cluster_resources().get("CPU", 1))
        count, per_actor = _pool_size(options, cpus, gpus)
        self.chunk = CHUNK_FILES["gpu" if gpus else "cpu"]
        worker = self.ray.remote(EmbeddingWorker).options(
            num_cpus=per_actor, num_gpus=1 if gpus else 0, max_restarts=-1, max_task_retries=-1)
        self.actors = [worker.remote(identity.to_dict(), "cuda" if gpus else device, precision, per_actor)
                       for _ in range(count)]
        self._check_actors()
        known_ref = self.ray.put(known)
        self.ray.get([actor.remember.remote(known_ref) for actor in self.actors])

    def _connect(self) -> None:
        if self.ray.is_initialized():
            return  # a caller that runs Ray itself (tests, notebooks) keeps its session
        address = self.options.address
        log.info("starting a local Ray instance" if address == "local" else f"joining the Ray cluster at {address}")
        try:
            self.ray.init(address=None if address == "local" else address, include_dashboard=False,
                          logging_level="ERROR", log_to_driver=False, configure_logging=True)
        except (ConnectionError, ValueError, RuntimeError) as error:
            raise UsageError(f"--ray {address}: cannot reach a Ray cluster ({' '.join(str(error).split())[:160]})"
                             ) from error
        self._owns_ray = True

    def _check_actors(self) -> None:
        reports = self.ray.get([actor.ready.remote() for actor in self.actors])
        for report in reports:
            if report["problem"]:
                raise ModelError(report["problem"])
        places = sorted({f"{r['node']} {r['device']}" for r in reports})
        log.info(f"{len(self.actors)} Ray actor{'s' if len(self.actors) != 1 else ''} embedding on {', '.join(places)}")

    def prepared(self, tasks: Iterator[Task], stopping: Callable[[], bool]) -> Iterator[Prepared]:
        """Every task's outcome, as the actors finish them (not in order); stops handing out work once
        `stopping()` says so, and then yields what was already in flight."""
        pending: dict = {}  # object ref -> actor index
        load = [0] * len(self.actors)
        chunks = _chunks(tasks, self.chunk)
        exhausted = False
        while True:
            while not exhausted and not stopping() and min(load) < CALLS_IN_FLIGHT:
                chunk = next(chunks, None)
                if chunk is None:
                    exhausted = True
                    break
                actor = load.index(min(load))
                items = [WorkItem(task, read_shipped(task) if self.options.ship_bytes else None) for task in chunk]
                pending[self.actors[actor].prepare.remote(items)] = actor
                load[actor] += 1
            if not pending:
                return
            done, _ = self.ray.wait(list(pending), num_returns=1)
            actor = pending.pop(done[0])
            load[actor] -= 1
            yield from self.ray.get(done[0])

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        if self._owns_ray:
            self.ray.shutdown()


def _chunks(tasks: Iterator[Task], size: int) -> Iterator[list[Task]]:
    chunk: list[Task] = []
    for task in tasks:
        chunk.append(task)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def read_shipped(task: Task) -> bytes | None:
    """The file's bytes for a worker that cannot read it; None leaves the reading (and its error) to the worker."""
    try:
        return read_task(task)
    except Exception:
        return None


def unreachable_everywhere(outcomes: list[str], options: RayOptions) -> bool:
    """Whether every file failed on the workers for want of reading it (the library is not mounted there)."""
    return bool(outcomes) and not options.ship_bytes and all(kind == "unreadable" for kind in outcomes)


def _pool_size(options: RayOptions, cpus: int, gpus: int) -> tuple[int, int]:
    """How many actors, and how many CPUs each. A GPU actor gets its share of the CPUs to decode with (decoding,
    not the GPU, sets the pace); `--ray-actors N` on CPUs shares the cluster's CPUs among the N. Ray would wait
    forever for actors that cannot be placed, so asking for more than fit is refused."""
    if options.actors and options.actors > (gpus or cpus):
        raise UsageError(f"--ray-actors {options.actors}: the Ray cluster has {gpus or cpus} "
                         f"{'GPUs' if gpus else 'CPUs'}, so at most {gpus or cpus} actors fit")
    count = options.actors or gpus or max(1, cpus // (options.cpus_per_actor or min(CPUS_PER_CPU_ACTOR, cpus)))
    per_actor = options.cpus_per_actor or max(1, cpus // count)
    return count, per_actor
