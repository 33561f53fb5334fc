"""Which files a search may answer with, worked out once per request, and the nearest of them to a vector.

With no --in and no filter, every file: the HNSW index answers. Otherwise the catalogue lists the files
that pass (an indexed range scan for folders, SQL for dates, cameras and tags); up to EXACT_SEARCH_LIMIT
of them are searched exactly, by their vectors, which is faster than steering HNSW through a sparse
filter and never short of results, however few pass; beyond that, HNSW searches with the filter.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from clipsearch.errors import UsageError
from clipsearch.search.request import QueryOptions
from clipsearch.store.catalog import Catalog
from clipsearch.store.hnsw import Hit, VectorIndex
from clipsearch.text import visible

EXACT_SEARCH_LIMIT = 50_000


@dataclass(frozen=True)
class Candidates:
    folders: tuple[str, ...] = ()  # --in, resolved
    ids: np.ndarray | None = None  # when filters apply: the files that pass them (and are under `folders`)

    @property
    def everything(self) -> bool:
        return not self.folders and self.ids is None


def candidates_for(catalog: Catalog, options: QueryOptions) -> Candidates:
    folders = tuple(_checked_folder(catalog, folder) for folder in options.within)
    filters = options.filters
    if not filters.active:
        return Candidates(folders)
    for tag in (*filters.tags, *filters.no_tags):
        if not catalog.tags.exists(tag):
            raise UsageError(f"no photo has the tag {visible(tag)!r} (`clipsearch tags` lists the tags)")
    ids = catalog.files.filtered_ids(folders, after=filters.after, before=filters.before, undated=filters.undated,
                               camera=filters.camera, tags=filters.tags, no_tags=filters.no_tags)
    return Candidates(folders, ids)


def _checked_folder(catalog: Catalog, folder: str) -> str:
    """The folder a search is narrowed to, resolved. Anything outside the indexed roots gets one answer, whatever
    is there: the answer must not tell what exists elsewhere on the disk (the web page is asked by others)."""
    if "\0" in folder:
        raise UsageError(f"--in {visible(folder)}: not a path (it holds a NUL character)")
    resolved = os.path.realpath(folder)
    indexed = catalog.files.count_under(resolved)  # files followed in through a link live outside the roots
    if not indexed and not any(resolved == root or resolved.startswith(root.rstrip("/") + "/")
                               for root in (r.path for r in catalog.roots.all())):
        raise UsageError(f"--in {visible(folder)}: not under an indexed folder (`clipsearch status` lists them)")
    if not os.path.exists(resolved):
        raise UsageError(f"--in {visible(folder)}: no such folder")
    if not os.path.isdir(resolved):
        raise UsageError(f"--in {visible(folder)}: not a folder (--in narrows the search to a folder)")
    if not indexed:
        raise UsageError(f"--in {visible(folder)}: nothing under it is indexed (`clipsearch status` lists the "
                         "indexed folders)")
    return resolved


def nearest(catalog: Catalog, index: Callable[[], VectorIndex], vector: np.ndarray, candidates: Candidates,
            k: int) -> list[Hit]:
    """The k candidates nearest to `vector`, best first. `index` is called only when HNSW is needed."""
    if candidates.ids is not None:
        if len(candidates.ids) <= EXACT_SEARCH_LIMIT:
            return exact_nearest(catalog.files.vectors(candidates.ids.tolist()), vector, k)
        return index().search(vector, k, allowed=set(candidates.ids.tolist()))
    if candidates.folders:
        if sum(catalog.files.count_under(f) for f in candidates.folders) <= EXACT_SEARCH_LIMIT:
            chunks = (chunk for f in candidates.folders for chunk in catalog.files.vectors_under(f))
            return exact_nearest(chunks, vector, k)
        allowed = {int(i) for f in candidates.folders for i in catalog.files.ids_under(f)}
        return index().search(vector, k, allowed=allowed)
    return index().search(vector, k)


def exact_nearest(chunks: Iterator[tuple[np.ndarray, np.ndarray]], vector: np.ndarray, k: int) -> list[Hit]:
    best_ids, best_scores = np.empty(0, np.int64), np.empty(0, np.float32)
    for ids, vectors in chunks:
        best_ids = np.concatenate([best_ids, ids])
        best_scores = np.concatenate([best_scores, vectors @ vector])
        if len(best_scores) > k:
            keep = np.argpartition(-best_scores, k)[:k]
            best_ids, best_scores = best_ids[keep], best_scores[keep]
    order = np.argsort(-best_scores, kind="stable")
    return [Hit(int(best_ids[i]), float(best_scores[i])) for i in order]
