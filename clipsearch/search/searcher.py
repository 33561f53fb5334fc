"""Turn a query into a vector, search the index, and join the catalogue into ranked results."""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator

import numpy as np

from clipsearch.config import DataDir
from clipsearch.errors import ClipsearchError, ImageError, UsageError
from clipsearch.imaging.decode import decode_image, read_file
from clipsearch.imaging.pixels import prepare_pixels
from clipsearch.models.backend import Encoder, load_encoder
from clipsearch.models.device import Device, Precision
from clipsearch.models.identity import MODEL_SETTING, resolve_model
from clipsearch.models.query_model import QueryModel
from clipsearch.models.query_model_export import refresh_query_model
from clipsearch.search.request import QueryKind, QueryOptions
from clipsearch.search.results import SearchResult
from clipsearch.store.catalog import Catalog
from clipsearch.store.hnsw import Hit, VectorIndex
from clipsearch.store.lock import writer_lock
from clipsearch.text import visible

# Below this many candidates, a folder filter is answered by exact search over their vectors:
# faster than steering HNSW through a sparse filter, and never short of results.
EXACT_SEARCH_LIMIT = 50_000
TEXT_CACHE_SIZE = 4096  # 2 KB a vector at 512 dimensions


class Searcher:
    """An open database ready to answer queries. The model and the index load on first use: the index is the
    largest thing a query holds (README, "Vector search"), so the queries are embedded before it loads."""

    def __init__(self, data_dir: DataDir, model: str | None = None, pretrained: str | None = None,
                 device: Device = Device.auto, precision: Precision = Precision.auto) -> None:
        self.catalog = Catalog(data_dir.catalog)
        try:
            if not self.catalog.get_json(MODEL_SETTING) or not self.catalog.count():
                raise UsageError(f"nothing is indexed in {data_dir.root} yet: run `clipsearch index FOLDER` first")
            self.identity, _ = resolve_model(self.catalog, model, pretrained)
        except BaseException:
            self.catalog.close()  # the caller gets no Searcher to close
            raise
        self._data_dir = data_dir
        self._device = Device(device)
        self._precision = Precision(precision)
        self._index: VectorIndex | None = None
        self._encoder: Encoder | None = None
        # The query model answers on the CPU without importing torch; asking for a device or int8 means torch.
        self._numpy_allowed = self._device in (Device.auto, Device.cpu) and self._precision is not Precision.int8
        self._query_model: QueryModel | None = None
        self._looked_for_copy = False
        self._text_vectors: dict[str, np.ndarray] = {}  # repeated queries (a server's, `query -`'s) embed once

    def close(self) -> None:
        self.catalog.close()

    @property
    def index(self) -> VectorIndex:
        if self._index is None:
            self._index, how = VectorIndex.open(self._data_dir, self.catalog, self.identity.dim)
            if how == "rebuilt":
                self._keep(self._index)
        return self._index

    def _keep(self, index: VectorIndex) -> None:
        """Save an index this query had to rebuild (minutes, at a million photos) for the queries after it,
        unless a writer holds the database (it saves its own) or the folder cannot be written."""
        with contextlib.suppress(ClipsearchError, OSError), writer_lock(self._data_dir, wait=False):
            index.persist(self.catalog, self._data_dir)

    @property
    def encoder(self) -> Encoder:
        """The model itself, loaded on first use. Having paid for loading it, write its query model if that is
        missing, so that the queries after this one skip torch."""
        if self._encoder is None:
            encoder = load_encoder(self.identity, self._device)
            if refresh_query_model(encoder, self._data_dir.query_model, self._data_dir.query_model_outcome):
                self._looked_for_copy = False  # there may be one now: from then on, every query takes its path
            encoder.use_precision(self._precision)
            self._encoder = encoder
        return self._encoder

    @property
    def query_model(self) -> QueryModel | None:
        """The query model, when queries can use it: no torch import, and the same answers in every process."""
        if not self._numpy_allowed:
            return None
        if self._query_model is None and not self._looked_for_copy:
            self._looked_for_copy = True
            self._query_model = QueryModel.open(self._data_dir.query_model, self.identity)
            if self._query_model is None and self._encoder is None:
                self.encoder  # noqa: B018 (loads the model, which writes the query model if it can)
                return self.query_model
        return self._query_model

    def search(self, kind: QueryKind, queries: list[str], options: QueryOptions) -> list[SearchResult]:
        return self.texts(queries, options) if kind is QueryKind.text else self.images(queries, options)

    def texts(self, queries: list[str], options: QueryOptions) -> list[SearchResult]:
        if not queries:
            return []
        if any(not query.strip() for query in queries):
            raise UsageError("the query is empty: describe what you are looking for")
        new = list(dict.fromkeys(q for q in queries if q not in self._text_vectors))
        if new:
            copy = self.query_model
            for query, vector in zip(new, copy.embed_texts(new) if copy else self.encoder.embed_texts(new)):
                self._text_vectors[query] = vector
        vectors = [self._text_vectors[q] for q in queries]
        while len(self._text_vectors) > TEXT_CACHE_SIZE:  # oldest first: dicts keep insertion order
            del self._text_vectors[next(iter(self._text_vectors))]
        self._make_room_for_the_index()
        return [r for query, vector in zip(queries, vectors) for r in self._search(vector, options, query=query)]

    def images(self, paths: list[str], options: QueryOptions) -> list[SearchResult]:
        wanted = []
        for path in paths:
            resolved = os.path.realpath(path)
            stored = self.catalog.find(resolved)
            if stored is not None:
                record, vector = stored
                wanted.append((path, vector, None if options.include_self else record.id))
            else:
                wanted.append((path, self._embed_file(resolved), None))
        self._make_room_for_the_index()
        return [r for path, vector, exclude in wanted for r in self._search(vector, options, query=path,
                                                                             exclude=exclude)]

    def _make_room_for_the_index(self) -> None:
        # Every query is embedded before the index loads, so the models can give their memory back first (the
        # Searcher reopens them if asked again), which lowers a large library's peak memory.
        if self._index is not None or (self._encoder is None and self._query_model is None):
            return
        self._encoder = self._query_model = None
        self._looked_for_copy = False
        gc.collect()
        _return_freed_memory()

    def _embed_file(self, path: str) -> np.ndarray:
        # visible(): an error is one line on stderr, even for a name with a newline in it.
        if not os.path.lexists(path):
            # read_file's "it vanished" is written for indexing; here the user simply named no file.
            raise UsageError(f"{visible(path)}: no such file")
        copy = self.query_model
        numpy_copy = copy if copy and copy.embeds_images else None
        settings = numpy_copy.preprocessing if numpy_copy else self.encoder.preprocessing
        try:
            decoded = decode_image(read_file(path), target_size=settings.image_size)
        except ImageError as error:
            raise UsageError(f"{visible(path)}: {error}") from error
        pixels = prepare_pixels(decoded.image, settings.image_size, settings.resize_mode, settings.interpolation)
        return (numpy_copy or self.encoder).embed_pixels(pixels[None])[0]

    def _search(self, vector: np.ndarray, options: QueryOptions, *, query: str,
                exclude: int | None = None) -> list[SearchResult]:
        wanted = options.limit + (exclude is not None)
        if options.within is not None:
            folder = os.path.realpath(options.within)
            if self.catalog.count_under(folder) <= EXACT_SEARCH_LIMIT:
                hits = _exact(self.catalog.vectors_under(folder), vector, wanted)
            else:
                hits = self.index.search(vector, wanted, allowed=set(self.catalog.ids_under(folder).tolist()))
        else:
            hits = self.index.search(vector, wanted)
        hits = [h for h in hits if h.id != exclude][:options.limit]
        if options.min_score is not None:
            hits = [h for h in hits if h.score >= options.min_score]
        records = self.catalog.records([h.id for h in hits])
        results = []
        for hit in hits:
            record = records.get(hit.id)
            if record is None:  # removed by a concurrent `index` since the index was read
                continue
            results.append(SearchResult(len(results) + 1, hit.score, record.path, record.width, record.height,
                                        record.taken_at, query))
        return results


def _return_freed_memory() -> None:
    """Hand the heap that freed model weights leave behind back to the OS (glibc keeps it for reuse otherwise)."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)


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
