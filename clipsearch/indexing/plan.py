"""What a crawl found, set against what the catalogue knows: what to read, what is unchanged, what is gone."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from clipsearch.indexing.crawl import CrawlResult, FoundFile
from clipsearch.indexing.prepare import Task
from clipsearch.indexing.roots import RootPlan
from clipsearch.store.catalog import Catalog
from clipsearch.store.crawl_memory import Failure
from clipsearch.store.rows import KnownFile


@dataclass
class Plan:
    tasks: list[Task]  # new, changed, to embed again, or worth another try
    known: dict[str, KnownFile]  # catalogued files this run owns, by path
    vanished: dict[int, str]  # their rows whose files were not found: moved, or deleted
    failed_elsewhere: list[str]  # remembered failures whose files are gone
    unstaged: list[str]  # during a model switch: staged files that are gone
    unchanged: int = 0
    remembered_failures: int = 0  # failed before and unchanged since: not tried again
    moved_ids: set[int] = field(default_factory=set)  # filled in as moves are found


def _under_any(path: str, folders: Sequence[str]) -> bool:
    return any(path == f or path.startswith(f.rstrip(os.sep) + os.sep) for f in folders)


def _retry(failure: Failure, file: FoundFile, limit: float) -> bool:
    """Whether a remembered failure is worth another try: the file changed, it could not be read at all, or a higher
    limit now admits it."""
    if (failure.size, failure.mtime_ns) != (file.size, file.mtime_ns) or failure.kind == "unreadable":
        return True  # a file that could not be read may be readable now (chmod changes neither size nor time)
    if failure.kind.startswith("limit:"):
        try:
            return float(failure.kind.removeprefix("limit:")) <= limit
        except ValueError:
            return True
    return False


def make_plan(catalog: Catalog, found: CrawlResult, roots: Sequence[RootPlan], *, staging: bool,
              reindex: bool, regions: int = 0) -> Plan:
    """The run's work. A root owns the files under it and those its followed symlinks led to; files under
    another known root that is not being crawled are that root's business."""
    crawled = [root.path for root in roots]
    others = [r.path for r in catalog.roots.all() if r.path not in crawled and not _under_any(r.path, crawled)]
    owned = crawled + [target for root in roots for target in root.linked if not _under_any(target, crawled)]
    known = {path: row for path, row in catalog.files.known(owned).items() if not _under_any(path, others)}
    staged = catalog.staging.stats(owned) if staging else {}
    failures = catalog.failures.known(owned)
    plan = Plan([], known, {}, [], [])
    # Regions are asked for: files catalogued without them are read again (their vector comes out the same).
    lacking = catalog.regions.files_without() if regions and not staging else set()
    limits = {root.path: root.max_megapixels for root in roots}
    for file in found.files:
        row = known.get(file.path)
        failure = failures.get(file.path)
        limit = limits.get(file.root, max(limits.values()))
        if staging:
            current = staged.get(file.path) == (file.size, file.mtime_ns)
        else:
            current = row is not None and (row.size, row.mtime_ns) == (file.size, file.mtime_ns) and not reindex
        if current and row is not None and row.id in lacking:
            plan.tasks.append(Task(file, limit, regions, fresh=True))
        elif current:
            plan.unchanged += 1
        elif failure is not None and not reindex and not _retry(failure, file, limit):
            plan.remembered_failures += 1  # reported when it first failed; `status --skipped` lists it
        else:
            # A touched file lacking regions is decoded too, not just re-dated: its content is catalogued
            plan.tasks.append(Task(file, limit, 0 if staging else regions, fresh=row is not None and row.id in lacking))
    seen = {file.path for file in found.files}
    protected = [d.rstrip("/") for d in found.unreadable_dirs]  # what could not be seen is not gone

    def gone(paths: Sequence[str]) -> list[str]:
        return [path for path in paths if path not in seen and not _under_any(path, protected)]

    # While switching models the rows stay as they are until the swap, which drops those not staged.
    plan.vanished = {} if staging else {known[path].id: path for path in gone(list(known))}
    plan.unstaged = gone(list(staged))
    plan.failed_elsewhere = gone(list(failures))
    return plan
