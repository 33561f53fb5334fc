"""What indexing remembers between runs besides the files: the roots with their crawl options, and the files
that could not be used, with why."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from clipsearch.store.connection import Repository
from clipsearch.store.rows import AT_OR_UNDER, at_or_under, decode_path, encode_path, now_iso
from clipsearch.store.sqlite_guard import guarded


@dataclass(frozen=True)
class RootRecord:
    path: str
    indexed_at: str | None
    options: dict  # the crawl options it was last indexed with (see clipsearch.indexing.roots)


@dataclass(frozen=True)
class Failure:
    path: str
    size: int
    mtime_ns: int
    reason: str
    # "bad": the file cannot be used as it is; "limit:N": it is N megapixels, over the --max-megapixels of its
    # run, and is retried when the limit allows it; "crash": it killed the process while being decoded;
    # "unreadable": it could not be read (permissions, a worker's view of the disk), and is tried on every run.
    kind: str = "bad"


class RootsRepository(Repository):
    """The `roots` table: the folders (or single files) indexed, each with its crawl options."""

    @guarded
    def all(self) -> list[RootRecord]:
        rows = self._conn.execute("SELECT path, indexed_at, options FROM roots ORDER BY path").fetchall()
        return [RootRecord(decode_path(path), stamp, _options(options)) for path, stamp, options in rows]

    @guarded
    def record(self, roots: dict[str, dict]) -> None:
        """Each root indexed now, with the options it was crawled with."""
        stamp = now_iso()
        self._conn.executemany("INSERT OR REPLACE INTO roots (path, indexed_at, options) VALUES (?, ?, ?)",
                               [(encode_path(r), stamp, json.dumps(o, sort_keys=True)) for r, o in roots.items()])

    @guarded
    def forget_under(self, paths: Sequence[str]) -> int:
        removed = 0
        for path in paths:
            removed += self._conn.execute(f"DELETE FROM roots WHERE {AT_OR_UNDER}", at_or_under(path)).rowcount
        return removed

    @guarded
    def last_indexed(self) -> str | None:
        """When any root was last indexed."""
        return self._conn.execute("SELECT max(indexed_at) FROM roots").fetchone()[0]


class FailuresRepository(Repository):
    """The `failures` table: the files that could not be used, with why."""

    @guarded
    def known(self, roots: Sequence[str]) -> dict[str, Failure]:
        failures: dict[str, Failure] = {}
        for root in roots:
            rows = self._conn.execute(f"SELECT path, size, mtime_ns, reason, kind FROM failures WHERE {AT_OR_UNDER}",
                                      at_or_under(root))
            for path, size, mtime, reason, kind in rows:
                failures[decode_path(path)] = Failure(decode_path(path), size, mtime, reason or "", kind or "bad")
        return failures

    @guarded
    def all(self) -> list[Failure]:
        rows = self._conn.execute("SELECT path, size, mtime_ns, reason, kind FROM failures ORDER BY path")
        return [Failure(decode_path(p), size, mtime, reason or "", kind or "bad") for p, size, mtime, reason, kind
                in rows]

    @guarded
    def count(self) -> int:
        return self._conn.execute("SELECT count(*) FROM failures").fetchone()[0]

    @guarded
    def record(self, failures: Sequence[Failure]) -> None:
        self._conn.executemany(
            "INSERT OR REPLACE INTO failures (path, size, mtime_ns, reason, kind) VALUES (?, ?, ?, ?, ?)",
            [(encode_path(f.path), f.size, f.mtime_ns, f.reason, f.kind) for f in failures],
        )

    @guarded
    def forget(self, paths: Sequence[str]) -> None:
        self._conn.executemany("DELETE FROM failures WHERE path = ?", [(encode_path(p),) for p in paths])

    @guarded
    def forget_under(self, paths: Sequence[str]) -> None:
        for path in paths:
            self._conn.execute(f"DELETE FROM failures WHERE {AT_OR_UNDER}", at_or_under(path))


def _options(raw: str | None) -> dict:
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
