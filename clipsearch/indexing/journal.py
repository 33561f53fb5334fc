"""Files that were being decoded when a run died: suspects, since the file itself may have killed it.

Before files go to the decoders their names are written to the `in_flight` table, and each batch's
commit clears its own. A run that ends in any normal way (success, error, Ctrl-C) clears the rest.
So whatever a run finds there was in flight when a process was killed: by the user, or by the file
(an out-of-memory kill, a crash in a decoder library). The next run decodes those in quarantine
(clipsearch.indexing.quarantine), where a file that kills its decoder is named and skipped.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from clipsearch.indexing.prepare import Task
from clipsearch.store.catalog import Catalog
from clipsearch.store.staging import InFlight


@dataclass(frozen=True)
class Suspects:
    suspects: list[Task]  # in flight when a run died: decoded in quarantine
    rest: list[Task]


def sort_out(catalog: Catalog, tasks: Sequence[Task]) -> Suspects:
    leftovers = catalog.in_flight.all()
    suspects: list[Task] = []
    rest: list[Task] = []
    for task in tasks:
        mark = leftovers.get(task.found.path)
        same = mark is not None and (mark.size, mark.mtime_ns) == (task.found.size, task.found.mtime_ns)
        (suspects if same else rest).append(task)
    return Suspects(suspects, rest)


def mark(catalog: Catalog, tasks: Sequence[Task], attempts: int = 1) -> None:
    with catalog.transaction():
        catalog.in_flight.mark([InFlight(t.found.path, t.found.size, t.found.mtime_ns, attempts) for t in tasks])


def marked_in_chunks(catalog: Catalog, tasks: Sequence[Task], chunk: int) -> Iterator[Task]:
    """The tasks, each chunk marked in flight just before its first task is handed out."""
    for start in range(0, len(tasks), chunk):
        part = tasks[start:start + chunk]
        mark(catalog, part)
        yield from part
