"""Search an open database: embed the queries, find the nearest vectors, join the catalogue into ranked results."""

from __future__ import annotations

import contextlib
import os

import numpy as np

from clipsearch.config import DataDir
from clipsearch.errors import ClipsearchError, UsageError
from clipsearch.filesystem import content_hash
from clipsearch.models.device import Device, Precision
from clipsearch.models.identity import resolve_model
from clipsearch.search.candidates import Candidates, candidates_for, nearest
from clipsearch.search.embedding import QueryEmbedder, read_query_file
from clipsearch.search.region_hits import REGIONS_PER_RESULT, merged, nearest_regions
from clipsearch.search.request import QueryKind, QueryOptions, SortKey, Term
from clipsearch.search.results import Result, SearchAnswer, camera_name
from clipsearch.store.catalog import Catalog
from clipsearch.store.hnsw import REGIONS, VectorIndex
from clipsearch.store.lock import writer_lock
from clipsearch.store.rows import FileRecord
from clipsearch.text import visible

MAX_CANDIDATES = 10_000  # asked for at most, when many of the best results' files have gone


class Searcher:
    """An open database ready to answer queries. The model and the index load on first use: the index is the
    largest thing a query holds (docs/speed.md, "Vector search"), so the queries are embedded before it loads."""

    def __init__(self, data_dir: DataDir, model: str | None = None, pretrained: str | None = None,
                 device: Device = Device.auto, precision: Precision = Precision.auto,
                 isolate_decoding: bool = False) -> None:
        self.catalog = Catalog(data_dir.catalog)
        try:
            if not self.catalog.files.count():
                raise UsageError(f"nothing is indexed in {data_dir.root} yet: run `clipsearch index FOLDER` first")
            self.identity = resolve_model(self.catalog, model, pretrained).identity
        except BaseException:
            self.catalog.close()  # the caller gets no Searcher to close
            raise
        self._data_dir = data_dir
        self._index: VectorIndex | None = None
        self._regions_index: VectorIndex | None = None
        self.embedder = QueryEmbedder(data_dir, self.identity, device, precision, isolate_decoding)

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

    @property
    def regions_index(self) -> VectorIndex:
        if self._regions_index is None:
            self.embedder.release()
            self._regions_index, how = VectorIndex.open(self._data_dir, self.catalog, self.identity.dim, REGIONS)
            if how == "rebuilt":
                self._keep(self._regions_index)
        return self._regions_index

    def catch_up(self) -> None:
        """Bring the loaded indexes up to the catalogue's latest change (a resident searcher, between requests)."""
        for index in (self._index, self._regions_index):
            if index is not None:
                index.catch_up(self.catalog)

    def _keep(self, index: VectorIndex) -> None:
        """Save an index this query had to rebuild (minutes, at a million photos) for the queries after it,
        unless a writer holds the database (it saves its own) or the folder cannot be written."""
        with contextlib.suppress(ClipsearchError, OSError), writer_lock(self._data_dir, wait=False):
            index.persist(self.catalog, self._data_dir)

    def search(self, kind: QueryKind, queries: list[str], options: QueryOptions) -> SearchAnswer:
        """Each query's best results; --and, --not and --like terms are blended into every query."""
        if not queries:
            return SearchAnswer([])
        if kind is QueryKind.text:
            wanted = [(query, vector, None) for query, vector in zip(queries, self.embedder.texts(queries))]
            return self._answer(wanted, options, regions=True)
        wanted = [(path, *self.image_vector(path, options.include_self)) for path in queries]
        return self._answer(wanted, options)

    def like_row(self, row_id: int, options: QueryOptions) -> SearchAnswer:
        """Photos like a catalogued one, named by its id (`clipsearch web`'s "more like this")."""
        stored = self.catalog.files.reusable(row_id)
        if stored is None:
            raise UsageError(f"no photo has id {row_id} in this database")
        record, vector = stored
        return self.like_vector(vector, record.path, options, None if options.include_self else record.id)

    def picture_vector(self, data: bytes, name: str) -> np.ndarray:
        """The vector of a picture given as bytes (an upload), decoded with the limits `index` uses."""
        vector = self.catalog.files.vector_by_hash(content_hash(data))  # a copy of an indexed photo
        return vector if vector is not None else self.embedder.image_file(name, data)

    def like_vector(self, vector: np.ndarray, label: str, options: QueryOptions,
                    exclude: int | None = None) -> SearchAnswer:
        return self._answer([(label, vector, exclude)], options)

    def _answer(self, wanted: list[tuple[str, np.ndarray, int | None]], options: QueryOptions,
                regions: bool = False) -> SearchAnswer:
        """(query, vector, row to leave out) -> each query's results, with the --and/--not/--like terms blended.
        `regions`: text queries also match photos by their region vectors, when the database has any."""
        candidates = candidates_for(self.catalog, options)
        blend = self._blend(options.terms)
        regions = regions and self.catalog.regions.any()
        return _joined([self._search(_blended(vector, blend), options, candidates, query, exclude, regions)
                        for query, vector, exclude in wanted])

    def _blend(self, terms: tuple[Term, ...]) -> np.ndarray | None:
        """The weighted sum of the normalised term vectors, to add to each query's own (normalised) vector."""
        if not terms:
            return None
        texts = [t for t in terms if t.kind is QueryKind.text]
        vectors = list(self.embedder.texts([t.value for t in texts])) if texts else []
        weights = [t.weight for t in texts]
        for term in terms:
            if term.kind is QueryKind.image:
                vectors.append(self.image_vector(term.value, include_self=True)[0])
                weights.append(term.weight)
        return np.sum([w * v for w, v in zip(weights, vectors)], axis=0)

    def image_vector(self, path: str, include_self: bool) -> tuple[np.ndarray, int | None]:
        """An image query's vector, and the row to leave out of its results (itself, when indexed)."""
        if not path:
            raise UsageError("an empty path is not an image: name a file")
        if "\0" in path:
            raise UsageError(f"{visible(path)}: a path cannot hold a NUL byte")
        resolved = os.path.realpath(path)
        stored = self.catalog.files.find(resolved)
        if stored is not None:
            record, vector = stored
            return vector, None if include_self else record.id
        data = read_query_file(resolved)
        copy = self.catalog.files.vector_by_hash(content_hash(data))  # a byte-identical copy of an indexed photo
        if copy is not None:
            return copy, None
        return self.embedder.image_file(resolved, data), None

    def _search(self, vector: np.ndarray, options: QueryOptions, candidates: Candidates, query: str,
                exclude: int | None = None, regions: bool = False) -> SearchAnswer:
        """The best `limit` results whose files still exist; those that do not are counted, and more are asked
        for in their place."""
        k = options.limit + (exclude is not None)
        boxes: dict[int, list[int]] = {}
        while True:
            hits = nearest(self.catalog, lambda: self.index, vector, candidates, k)
            if regions:
                found_regions = nearest_regions(self.catalog, lambda: self.regions_index, vector, candidates,
                                                k * REGIONS_PER_RESULT)
                hits, boxes = merged(self.catalog, hits, found_regions)
                hits = hits[:k]
            hits = [h for h in hits if h.id != exclude]
            if options.min_score is not None:
                hits = [h for h in hits if h.score >= options.min_score]
            records = self.catalog.files.records([h.id for h in hits])
            # A record may be gone too: removed by a concurrent `index` since the index was read.
            found = [(h.score, records[h.id]) for h in hits if h.id in records]
            present = [(score, r) for score, r in found if os.path.exists(r.path)]
            exhausted = len(hits) < k - (exclude is not None)
            if len(present) >= options.limit or exhausted or k >= MAX_CANDIDATES:
                break
            k = min(MAX_CANDIDATES, 2 * k + (len(found) - len(present)))
        chosen = _sorted(present[:options.limit], options.sort)
        results = [_result(rank, score, record, query, boxes.get(record.id))
                   for rank, (score, record) in enumerate(chosen, start=1)]
        return SearchAnswer(results, len(found) - len(present))


def _blended(vector: np.ndarray, blend: np.ndarray | None) -> np.ndarray:
    if blend is None:
        return vector
    combined = vector + blend
    norm = float(np.linalg.norm(combined))
    if norm < 1e-6:
        raise UsageError("the terms cancel each other out: there is nothing left to search for")
    return (combined / norm).astype(np.float32)


def _sorted(chosen: list[tuple[float, FileRecord]], key: SortKey) -> list[tuple[float, FileRecord]]:
    if key is SortKey.date:  # undated last, in score order
        return sorted(chosen, key=lambda item: (item[1].taken_at is None, item[1].taken_at or ""))
    if key is SortKey.path:
        return sorted(chosen, key=lambda item: os.fsencode(item[1].path))
    return chosen


def _result(rank: int, score: float, record: FileRecord, query: str, box: list[int] | None = None) -> Result:
    return Result(rank, score, record.path, record.width, record.height, record.taken_at, query,
                        camera_name(record.camera_make, record.camera_model), record.id, box)


def _joined(answers: list[SearchAnswer]) -> SearchAnswer:
    return SearchAnswer([r for a in answers for r in a.results], sum(a.missing for a in answers))
