"""Which folders an `index` run crawls, each with which options.

A root remembers the options it was last indexed with (excludes, hidden files, symlinks, the
megapixel limit), so a plain `clipsearch index` later does what the first one did: options given
on the command line replace the remembered ones, one by one, for the paths named. A path under a
known root starts from that root's options. Known roots nested under a path being indexed are
crawled too, with their own options, so indexing a parent never drops what a child root holds
(a hidden folder indexed by name, say). With no paths, every known root is refreshed.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace

from clipsearch.config import DEFAULT_MAX_MEGAPIXELS
from clipsearch.errors import UsageError
from clipsearch.indexing.crawl import CrawlOptions, resolve_roots
from clipsearch.store.crawl_memory import RootRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OptionChanges:
    """What the command line says about crawl options: None for each option it leaves alone."""

    include_hidden: bool | None = None
    excludes: tuple[str, ...] | None = None
    follow_symlinks: bool | None = None
    max_megapixels: float | None = None

    def __post_init__(self) -> None:
        if self.max_megapixels is not None and not (math.isfinite(self.max_megapixels) and self.max_megapixels > 0):
            raise UsageError(f"--max-megapixels {self.max_megapixels}: must be a positive number")


@dataclass(frozen=True)
class RootPlan:
    path: str
    crawl: CrawlOptions
    max_megapixels: float = DEFAULT_MAX_MEGAPIXELS
    linked: tuple[str, ...] = ()  # outside the root, reached through followed symlinks last time

    def record(self, linked: tuple[str, ...]) -> dict:
        """The options to remember for this root after a complete run that found `linked`."""
        return {"include_hidden": self.crawl.include_hidden, "excludes": list(self.crawl.excludes),
                "follow_symlinks": self.crawl.follow_symlinks, "max_megapixels": self.max_megapixels,
                "linked": list(linked)}


def _from_record(path: str, options: dict) -> RootPlan:
    crawl = CrawlOptions(include_hidden=bool(options.get("include_hidden", False)),
                         excludes=tuple(str(p) for p in options.get("excludes", ())),
                         follow_symlinks=bool(options.get("follow_symlinks", False)))
    limit = options.get("max_megapixels", DEFAULT_MAX_MEGAPIXELS)
    valid = isinstance(limit, (int, float)) and math.isfinite(limit) and limit > 0
    return RootPlan(path, crawl, float(limit) if valid else DEFAULT_MAX_MEGAPIXELS,
                    tuple(str(p) for p in options.get("linked", ())))


def _changed(plan: RootPlan, changes: OptionChanges) -> RootPlan:
    crawl = plan.crawl
    if changes.include_hidden is not None:
        crawl = replace(crawl, include_hidden=changes.include_hidden)
    if changes.excludes is not None:
        crawl = replace(crawl, excludes=changes.excludes)
    if changes.follow_symlinks is not None:
        crawl = replace(crawl, follow_symlinks=changes.follow_symlinks)
    limit = plan.max_megapixels if changes.max_megapixels is None else changes.max_megapixels
    return replace(plan, crawl=crawl, max_megapixels=limit)


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def plan_roots(paths: Sequence[str], changes: OptionChanges, recorded: Sequence[RootRecord], *,
               everything: bool = False) -> list[RootPlan]:
    """The roots to crawl: the paths named (every known root if none, or if `everything`), and the known roots
    nested under them."""
    known = {root.path: _from_record(root.path, root.options) for root in recorded}
    named = resolve_roots(paths) if paths else []
    plans: dict[str, RootPlan] = {}
    for path in named:
        enclosing = max((r for r in known if _under(path, r)), key=len, default=None)
        base = known[enclosing] if enclosing else RootPlan(path, CrawlOptions())
        # A path under a root starts from the root's options, but what it links to is its own.
        plans[path] = _changed(replace(base, path=path, linked=base.linked if enclosing == path else ()), changes)
    for root, plan in known.items():
        wanted = everything or not named or any(_under(root, path) for path in named)
        if root in plans or not wanted:
            continue
        if os.path.exists(root):
            plans[root] = plan if named else _changed(plan, changes)
        else:
            log.info(f"not re-indexing {root}: it no longer exists (`clipsearch forget {root}` drops it)")
    return list(plans.values())
