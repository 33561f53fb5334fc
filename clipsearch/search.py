"""Turn a query into a vector, search the index, and join the catalogue into ranked results."""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from clipsearch.catalog import Catalog
from clipsearch.config import DataDir
from clipsearch.encoder import Encoder
from clipsearch.errors import ClipsearchError, ImageError, UsageError
from clipsearch.images import decode_image, prepare_pixels, read_file
from clipsearch.models import MODEL_SETTING, ModelIdentity, resolve_model
from clipsearch.query_model import QueryModel, read_manifest
from clipsearch.render import visible
from clipsearch.results import QueryOptions, SearchResult
from clipsearch.serve import server_info
from clipsearch.vectors import Hit, VectorIndex, trusted_state

# Below this many candidates, a folder filter is answered by exact search over their vectors:
# faster than steering HNSW through a sparse filter, and never short of results.
EXACT_SEARCH_LIMIT = 50_000
TEXT_CACHE_SIZE = 4096  # 2 KB a vector at 512 dimensions


class Searcher:
    """An open database ready to answer queries. The model and the index load on first use: the index is the
    largest thing a query holds (about 2.4 GB per million photos), so the queries are embedded before it loads."""

    def __init__(self, data_dir: DataDir, model: str | None = None, pretrained: str | None = None,
                 device: str = "auto", precision: str = "auto") -> None:
        self.catalog = Catalog(data_dir.catalog)
        try:
            if not self.catalog.get_json(MODEL_SETTING) or not self.catalog.count():
                raise UsageError(f"nothing is indexed in {data_dir.root} yet: run `clipsearch index FOLDER` first")
            self.identity, _ = resolve_model(self.catalog, model, pretrained)
        except BaseException:
            self.catalog.close()  # the caller gets no Searcher to close
            raise
        self._data_dir = data_dir
        self._device = device
        self._precision = precision
        self._index: VectorIndex | None = None
        self._encoder: Encoder | None = None
        # The numpy copy answers on the CPU without importing torch; asking for a device or int8 means torch.
        self._numpy_allowed = device in ("auto", "cpu") and precision != "int8"
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
        from clipsearch.pipeline import Reporter, writer_lock

        with contextlib.suppress(ClipsearchError, OSError), writer_lock(self._data_dir, False, Reporter()):
            index.catch_up(self.catalog)
            index.save(self._data_dir, self.catalog.get_setting("catalog_id") or "")

    @property
    def encoder(self) -> Encoder:
        """The open_clip model itself, loaded on first use; loading it also writes the numpy copy."""
        if self._encoder is None:
            self._encoder = Encoder(self.identity, self._device, self._precision, export_to=self._data_dir.query_model)
            self._looked_for_copy = False  # there may be one now: from then on, every query takes the same path
        return self._encoder

    @property
    def query_model(self) -> QueryModel | None:
        """The model's numpy copy, when queries can use it: no torch import, and the same answers in every process."""
        if not self._numpy_allowed:
            return None
        if self._query_model is None and not self._looked_for_copy:
            self._looked_for_copy = True
            self._query_model = QueryModel.open(self._data_dir.query_model, self.identity)
            if self._query_model is None and self._encoder is None:
                self.encoder  # noqa: B018 (loads the model, which writes the copy)
                return self.query_model
        return self._query_model

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
        # Searcher reopens them if asked again): at a million photos that keeps a query process under 3 GB.
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


@dataclass(frozen=True)
class DatabaseStatus:
    database: str
    model: str | None
    model_identity: dict | None
    images: int
    roots: list[str]
    size_bytes: int
    last_indexed: str | None
    index: str
    known_bad_files: int
    query_model: str = "none"
    server: dict | None = None  # pid, uptime_s and answered of a running `clipsearch serve`

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def lines(self) -> list[tuple[str, str]]:
        roots = self.roots or ["(none)"]
        lines = [("database", self.database), ("model", self.model or "(none yet)"), ("images", str(self.images)),
                 ("roots", roots[0])]
        lines += [("", root) for root in roots[1:]]
        lines += [("size on disk", _human_size(self.size_bytes)), ("last indexed", self.last_indexed or "never"),
                  ("vector index", self.index), ("query model", self.query_model)]
        if self.server:
            lines.append(("server", f"running (pid {self.server['pid']}, {self.server['answered']} requests answered)"))
        if self.known_bad_files:
            plural = "s" if self.known_bad_files != 1 else ""
            lines.append(("unreadable", f"{self.known_bad_files} file{plural} (retried when they change)"))
        return lines


def _human_size(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def database_status(data_dir: DataDir) -> DatabaseStatus:
    size = sum(p.stat().st_size for p in data_dir.root.rglob("*") if p.is_file()) if data_dir.root.is_dir() else 0
    if not data_dir.catalog.exists():
        return DatabaseStatus(str(data_dir.root), None, None, 0, [], size, None, "none", 0)
    catalog = Catalog(data_dir.catalog)
    try:
        stats = catalog.stats()
        stored = catalog.get_json(MODEL_SETTING)
        identity = ModelIdentity.from_dict(stored) if stored else None
        index = _index_state(data_dir, catalog, identity.dim if identity else None)
        return DatabaseStatus(
            database=str(data_dir.root), model=identity.describe() if identity else None, model_identity=stored,
            images=stats.files, roots=stats.roots, size_bytes=size, last_indexed=stats.last_indexed, index=index,
            known_bad_files=stats.failures,
            query_model=_query_model_state(data_dir, identity), server=server_info(data_dir),
        )
    finally:
        catalog.close()


def _query_model_state(data_dir: DataDir, identity: ModelIdentity | None) -> str:
    manifest = read_manifest(data_dir.query_model, identity) if identity else None
    if manifest is None:
        return "none (the next query loads torch, then writes it)"
    towers = "text and image towers" if manifest.get("image") else "text tower"
    size = sum(p.stat().st_size for p in data_dir.query_model.iterdir())
    return f"numpy copy of the {towers}: queries skip torch ({_human_size(size)})"


def _index_state(data_dir: DataDir, catalog: Catalog, dim: int | None) -> str:
    """What `VectorIndex.open` will make of the HNSW file, judged cheaply: status loads no index."""
    if not data_dir.index.exists() or not data_dir.index_state.exists():
        return "missing (rebuilt from the catalogue on the next query)"
    state = trusted_state(data_dir, catalog, dim) if dim else None
    if state is None:
        return "damaged or out of date (rebuilt from the catalogue on the next query)"
    if state.seq < catalog.current_seq():
        return "behind the catalogue (caught up on the next query)"
    return f"current ({_human_size(state.size)})"
