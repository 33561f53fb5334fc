"""Facts read again: photos indexed by an earlier clipsearch, before it read cameras, get their EXIF read from
the file's header alone. Nothing is decoded or embedded again."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from clipsearch.errors import ImageError
from clipsearch.imaging.decode import read_facts, read_file
from clipsearch.store.catalog import Catalog

CHUNK = 500


def _facts_of(item: tuple[str, int]) -> tuple[int, int | None, int | None, str | None, str | None, str | None] | None:
    path, file_id = item
    try:
        info = read_facts(read_file(path))
    except ImageError:
        return None  # unreadable now: left as it was, and tried again next time
    return file_id, info.width, info.height, info.taken_at, info.camera_make, info.camera_model


def refresh_facts(catalog: Catalog, stale: Iterable[tuple[str, int]], workers: int) -> int:
    """Read the header of each (path, row id) and store its facts; returns how many were updated."""
    items = list(stale)
    updated = 0
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="facts") as executor:
        for start in range(0, len(items), CHUNK):
            facts = [f for f in executor.map(_facts_of, items[start:start + CHUNK]) if f is not None]
            with catalog.transaction():
                catalog.files.update_facts(facts)
            updated += len(facts)
    return updated
