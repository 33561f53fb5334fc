"""Search an open database: embed the queries, find the nearest vectors, join the catalogue into ranked results."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import numpy as np

from clipsearch.config import DataDir
from clipsearch.errors import ClipsearchError, UsageError
from clipsearch.files import content_hash
from clipsearch.models.device import Device, Precision
from clipsearch.models.identity import resolve_model
from clipsearch.search.embedding import QueryEmbedder, read_query_file
from clipsearch.search.request import QueryKind, QueryOptions
from clipsearch.search.results import SearchAnswer, SearchResult
from clipsearch.store.catalog import Catalog
from clipsearch.store.hnsw import Hit, VectorIndex
from clipsearch.store.lock import writer_lock
from clipsearch.text import visible

# Below this many candidates, a filter is answered by exact search over their vectors: faster than steering
# HNSW through a sparse filter, and never short of results.
EXACT_SEARCH_LIMIT = 50_000
MAX_CANDIDATES = 10_000  # asked for at most, when many of the best results' files have gone


class Searcher:
    """An open database ready to answer queries. The model and the index load on first use: the index is the
    largest thing a query holds (README, "Vector search"), so the queries are embedded before it loads."""

    def __init__(self, data_dir: DataDir, model: str | None = None, pretrained: str | None = None,
                 device: Device = Device.auto, precision: Precision = Precision.auto) -> None:
        self.catalog = Catalog(data_dir.catalog)
        try:
            if not self.catalog.count():
                raise UsageError(f"nothing is indexed in {data_dir.root} yet: run `clipsearch index FOLDER` first")
            self.identity = resolve_model(self.catalog, model, pretrained).identity
        except BaseException:
            self.catalog.close()  # the caller gets no Searcher to close
            raise
        self._data_dir = data_dir
        self._index: VectorIndex | None = None
        self.embedder = QueryEmbedder(data_dir, self.identity, device, precision)

    def close(self) -> None:
        self.catalog.close()

    @property
    def index(self) -> VectorIndex:
        if self._index is None:
            self.embedder.release()  # every query is embedded by now: the models make room for the index
            self._index, how = VectorIndex.open(self._data_dir, self.catalog, self.identity.dim)
            if how == "rebuilt":
                self._keep(self._index)
        return self._index

    def _keep(self, index: VectorIndex) -> None:
        """Save an index this query had to rebuild (minutes, at a million photos) for the queries after it,
        unless a writer holds the database (it saves its own) or the folder cannot be written."""
        with contextlib.suppress(ClipsearchError, OSError), writer_lock(self._data_dir, wait=False):
            index.persist(self.catalog, self._data_dir)

    def search(self, kind: QueryKind, queries: list[str], options: QueryOptions) -> SearchAnswer:
        return self.texts(queries, options) if kind is QueryKind.text else self.images(queries, options)

    def texts(self, queries: list[str], options: QueryOptions) -> SearchAnswer:
        if not queries:
            return SearchAnswer([])
        folders = self._folders(options)
        vectors = self.embedder.texts(queries)
        return _joined([self._search(vector, options, folders, query) for query, vector in zip(queries, vectors)])

    def images(self, paths: list[str], options: QueryOptions) -> SearchAnswer:
        folders = self._folders(options)
        wanted = [(path, *self._image_vector(path, options)) for path in paths]
        return _joined([self._search(vector, options, folders, path, exclude=exclude)
                        for path, vector, exclude in wanted])

    def _image_vector(self, path: str, options: QueryOptions) -> tuple[np.ndarray, int | None]:
        """An image query's vector, and the row to leave out of its results (itself, when indexed)."""
        if not path:
            raise UsageError("an empty path is not an image: name a file")
        if "\0" in path:
            raise UsageError(f"{visible(path)}: a path cannot hold a NUL byte")
        resolved = os.path.realpath(path)
        stored = self.catalog.find(resolved)
        if stored is not None:
            record, vector = stored
            return vector, None if options.include_self else record.id
        data = read_query_file(resolved)
        copy = self.catalog.vector_by_hash(content_hash(data))  # a byte-identical copy of an indexed photo
        if copy is not None:
            return copy, None
        return self.embedder.image_file(resolved, data), None

    def _folders(self, options: QueryOptions) -> list[str]:
        """The --in folders, resolved; each must exist and hold something indexed."""
        folders = []
        for folder in options.within:
            resolved = os.path.realpath(folder)
            if not os.path.exists(resolved):
                raise UsageError(f"--in {visible(folder)}: no such folder")
            if not os.path.isdir(resolved):
                raise UsageError(f"--in {visible(folder)}: not a folder (--in narrows the search to a folder)")
            if not self.catalog.count_under(resolved):
                raise UsageError(f"--in {visible(folder)}: nothing under it is indexed (`clipsearch status` lists "
                                 "the indexed folders)")
            folders.append(resolved)
        return folders

    def _ranked(self, vector: np.ndarray, folders: list[str], k: int) -> list[Hit]:
        """The k nearest files, among those under `folders` if any."""
        if not folders:
            return self.index.search(vector, k)
        if sum(self.catalog.count_under(f) for f in folders) <= EXACT_SEARCH_LIMIT:
            return _exact((chunk for f in folders for chunk in self.catalog.vectors_under(f)), vector, k)
        allowed = {int(i) for f in folders for i in self.catalog.ids_under(f)}
        return self.index.search(vector, k, allowed=allowed)

    def _search(self, vector: np.ndarray, options: QueryOptions, folders: list[str], query: str,
                exclude: int | None = None) -> SearchAnswer:
        """The best `limit` results whose files still exist; those that do not are counted, and more are asked
        for in their place."""
        k = options.limit + (exclude is not None)
        while True:
            hits = [h for h in self._ranked(vector, folders, k) if h.id != exclude]
            if options.min_score is not None:
                hits = [h for h in hits if h.score >= options.min_score]
            records = self.catalog.records([h.id for h in hits])
            # A record may be gone too: removed by a concurrent `index` since the index was read.
            found = [(h, records[h.id]) for h in hits if h.id in records]
            present = [(h, r) for h, r in found if os.path.exists(r.path)]
            exhausted = len(hits) < k - (exclude is not None)
            if len(present) >= options.limit or exhausted or k >= MAX_CANDIDATES:
                break
            k = min(MAX_CANDIDATES, 2 * k + (len(found) - len(present)))
        missing = len(found) - len(present)
        results = [SearchResult(rank, hit.score, record.path, record.width, record.height, record.taken_at, query)
                   for rank, (hit, record) in enumerate(present[:options.limit], start=1)]
        return SearchAnswer(results, missing)


def _joined(answers: list[SearchAnswer]) -> SearchAnswer:
    return SearchAnswer([r for a in answers for r in a.results], sum(a.missing for a in answers))


def _exact(chunks: Iterator[tuple[np.ndarray, np.ndarray]], vector: np.ndarray, k: int) -> list[Hit]:
    best_ids, best_scores = np.empty(0, np.int64), np.empty(0, np.float32)
    for ids, vectors in chunks:
        best_ids = np.concatenate([best_ids, ids])
        best_scores = np.concatenate([best_scores, vectors @ vector])
        if len(best_scores) > k:
            keep = np.argpartition(-best_scores, k)[:k]
            best_ids, best_scores = best_ids[keep], best_scores[keep]
    order = np.argsort(-best_scores, kind="stable")
    return [Hit(int(best_ids[i]), float(best_scores[i])) for i in order]
