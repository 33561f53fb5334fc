"""What a Ray actor does for `index --ray`: read, hash, decode and embed chunks of files with its own model.

An actor loads the database's model once (on a GPU when Ray gave it one) after checking that the files
it sees are that model's: a checkpoint or folder is hashed again on the worker, since a node may hold other
weights at the same path. Content the catalogue already holds (a copy or a move, known from the hashes the
driver sends once) is not decoded: the driver, which reads the catalogue, settles it. Nothing here writes
anywhere; the driver is the one writer.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from clipsearch.errors import ClipsearchError
from clipsearch.indexing.prepare import KNOWN_CONTENT, Prepared, Reuse, Task, make_preparer, read_task


@dataclass(frozen=True)
class WorkItem:
    task: Task
    data: bytes | None = None  # the file's bytes, when the driver ships them (--ray-ship-bytes)


class KnownContent:
    """The content hashes the catalogue holds, as a worker sees them: known, or not."""

    def __init__(self, digests: frozenset[str]) -> None:
        self._digests = digests

    def find(self, digest: str) -> Reuse | None:
        return KNOWN_CONTENT if digest in self._digests else None


class EmbeddingWorker:
    """One model on one worker. Wrapped with ray.remote by the driver, so this module never imports Ray."""

    def __init__(self, identity: dict, device: str, precision: str, threads: int) -> None:
        self.problem: str | None = None
        self.device = "not loaded"
        self._pool = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="decode")
        self._known = KnownContent(frozenset())
        try:
            self._encoder = _load_checked(identity, device, precision)
            self.device = f"{self._encoder.device} ({self._encoder.precision})"
        except ClipsearchError as error:  # reported by ready(): an actor that raises here would be restarted
            self.problem = str(error)

    def remember(self, known: frozenset[str]) -> None:
        """The catalogue's content hashes. Given after construction, not to it: Ray keeps constructor arguments for
        restarts, and a restarted actor that has forgotten them only does more work (the driver checks all)."""
        self._known = KnownContent(known)

    def ready(self) -> dict:
        return {"pid": os.getpid(), "problem": self.problem, "device": self.device,
                "node": os.uname().nodename}

    def prepare(self, items: list[WorkItem]) -> list[Prepared]:
        """Each file settled: unreadable (its reason), known content (for the driver to look up), or embedded."""
        shipped = {item.task.found.path: item.data for item in items if item.data is not None}

        def read(task: Task) -> bytes:
            return shipped[task.found.path] if task.found.path in shipped else read_task(task)

        prepare = make_preparer(lambda: self._encoder.preprocessing, self._known, read=read)
        prepared = list(self._pool.map(prepare, [item.task for item in items]))
        waiting = [index for index, item in enumerate(prepared) if item.pixels is not None]
        if waiting:
            vectors = self._encoder.embed_pixels(np.stack([prepared[index].pixels for index in waiting]))
            for index, vector in zip(waiting, vectors):
                prepared[index] = replace(prepared[index], pixels=None, vector=vector)
        return prepared


def _load_checked(identity_fields: dict, device: str, precision: str):
    from clipsearch.errors import ModelMismatchError
    from clipsearch.models.identity import ModelIdentity, identify
    from clipsearch.models.runtime import load_encoder

    identity = ModelIdentity.from_dict(identity_fields)
    seen = identify(identity.spec())  # hashed again, here: the worker's files, not the driver's
    if not seen.same_model(identity):
        raise ModelMismatchError(f"a Ray worker on {os.uname().nodename} has other weights than this database's "
                                 f"model: it sees {seen.describe()}, the database uses {identity.describe()}")
    encoder = load_encoder(identity, device)
    encoder.use_precision(precision)
    return encoder
