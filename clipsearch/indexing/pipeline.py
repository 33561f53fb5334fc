"""Indexing: crawl -> decode workers -> batches -> encoder -> catalogue, with progress.

Decoding runs in threads while the main thread runs the model, so the two overlap. Each batch
is committed in one transaction, so a crash loses at most the batch in flight, and the next run
resumes from what was committed. Removals wait for a complete run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from clipsearch.config import DataDir
from clipsearch.indexing.crawl import CrawlResult, FoundFile, crawl
from clipsearch.indexing.prepare import HashLookup, Prepared, make_preparer, ordered
from clipsearch.indexing.progress import IndexOptions, IndexStats, Reporter
from clipsearch.models.backend import Encoder, load_encoder
from clipsearch.models.device import DEFAULT_BATCH_SIZE
from clipsearch.models.identity import MODEL_SETTING, ModelIdentity, resolve_model
from clipsearch.models.preprocessing import Preprocessing
from clipsearch.models.query_model_export import refresh_query_model
from clipsearch.store.catalog import Catalog
from clipsearch.store.hnsw import VectorIndex
from clipsearch.store.lock import writer_lock
from clipsearch.store.rows import KnownFile, Move, NewFile

INDEX_SAVE_INTERVAL_S = 60.0


@dataclass
class _Batch:
    files: list[NewFile] = field(default_factory=list)
    pending: list[Prepared] = field(default_factory=list)  # waiting for the model
    moves: list[Move] = field(default_factory=list)
    replaced: list[int] = field(default_factory=list)  # rows whose path a moved file now takes
    touches: list[tuple[int, int, int]] = field(default_factory=list)
    failures: list[tuple[str, int, int, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.files) + len(self.pending) + len(self.moves) + len(self.touches) + len(self.failures)


@dataclass(frozen=True)
class _Plan:
    """What a crawl found, set against the catalogue."""

    work: list[FoundFile]  # new, changed, or to be embedded again
    known: dict[str, KnownFile]
    failed_elsewhere: list[str]  # remembered failures whose files are gone
    vanished: dict[int, str]  # rows whose files were not found: moved, or deleted


class Indexer:
    def __init__(self, data_dir: DataDir, options: IndexOptions, reporter: Reporter) -> None:
        self.data_dir = data_dir
        self.options = options
        self.reporter = reporter
        self.stats = IndexStats()
        self.identity: ModelIdentity | None = None
        self._encoder: Encoder | None = None
        self._encoder_lock = threading.Lock()
        self._encoder_error: Exception | None = None
        self._last_save = time.monotonic()
        self._vanished: dict[int, str] = {}
        self._moved_ids: set[int] = set()
        self._stop = threading.Event()

    def run(self) -> IndexStats:
        started = time.monotonic()
        with writer_lock(self.data_dir, self.options.wait_for_lock, self.reporter.message), \
                self._graceful_interrupts():
            catalog = Catalog(self.data_dir.catalog, create=True)
            try:
                self._run(catalog)
            finally:
                catalog.close()
        self.stats.seconds = time.monotonic() - started
        return self.stats

    @contextlib.contextmanager
    def _graceful_interrupts(self) -> Iterator[None]:
        """The first Ctrl-C finishes the batch in flight and stops cleanly; a second one stops at once."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def request_stop(signum: int, frame: object) -> None:
            if self._stop.is_set():
                raise KeyboardInterrupt
            self._stop.set()
            self.reporter.message("stopping after the current batch (Ctrl-C again to stop at once)")

        previous = signal.signal(signal.SIGINT, request_stop)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _run(self, catalog: Catalog) -> None:
        if catalog.get_setting("catalog_id") is None:
            catalog.set_setting("catalog_id", uuid.uuid4().hex)
        identity, changed = resolve_model(catalog, self.options.model, self.options.pretrained,
                                          reindex=self.options.reindex)
        self.identity = identity
        self.stats.model = identity.describe()
        found = crawl(self._roots(catalog, changed), self.options.crawl)  # first: a bad root must change nothing
        if changed:
            self._start_over(catalog, identity)
        for problem in found.problems:
            self.reporter.skipped(problem.path, problem.reason)
        self.stats.skipped += len(found.problems)
        index, _ = VectorIndex.open(self.data_dir, catalog, identity.dim)
        plan = self._plan(catalog, found)
        self.reporter.started(len(plan.work))
        try:
            if plan.work:
                self._process(catalog, index, plan)
            if self._stop.is_set():
                raise KeyboardInterrupt  # removals wait for a complete crawl-and-index run
            self._finish(catalog, found, plan)
        except KeyboardInterrupt:
            self.stats.interrupted = True
        except BaseException:
            with contextlib.suppress(Exception):  # the first error is the one worth reporting
                index.persist(catalog, self.data_dir)
            raise
        index.persist(catalog, self.data_dir)

    def _roots(self, catalog: Catalog, model_changed: bool) -> list[str]:
        """The paths asked for; with a new model, every root indexed so far too, since every vector is redone."""
        roots = list(self.options.roots)
        if model_changed and catalog.count():
            for root in catalog.stats().roots:
                if root in roots:
                    continue
                if os.path.exists(root):
                    roots.append(root)
                else:
                    self.reporter.message(f"not re-indexing {root}: it no longer exists")
        return roots

    def _start_over(self, catalog: Catalog, identity: ModelIdentity) -> None:
        """A new model makes every stored vector meaningless."""
        with catalog.transaction():
            if catalog.count():
                catalog.remove_under(["/"], catalog.next_seq())
            catalog.set_json(MODEL_SETTING, identity.to_dict())

    def _plan(self, catalog: Catalog, found: CrawlResult) -> _Plan:
        reindex = self.options.reindex
        known = catalog.known_files(found.roots)
        failures = catalog.known_failures(found.roots)
        work: list[FoundFile] = []
        seen: set[str] = set()
        for file in found.files:
            seen.add(file.path)
            row = known.get(file.path)
            if row and (row.size, row.mtime_ns) == (file.size, file.mtime_ns) and not reindex:
                self.stats.unchanged += 1
            elif failures.get(file.path) == (file.size, file.mtime_ns) and not reindex:
                self.stats.skipped += 1  # known bad and unchanged: reported when it first failed
            else:
                work.append(file)
        # What could not be seen (an unreadable folder) is not gone.
        protected = tuple(d.rstrip("/") + "/" for d in found.unreadable_dirs)
        vanished = {row.id: path for path, row in known.items() if path not in seen and not path.startswith(protected)}
        failed_elsewhere = [p for p in failures if p not in seen and not p.startswith(protected)]
        return _Plan(work, known, failed_elsewhere, vanished)

    def _finish(self, catalog: Catalog, found: CrawlResult, plan: _Plan) -> None:
        """After a complete run: drop the rows of files that are gone, and note the roots as indexed."""
        if plan.vanished:
            gone = [row_id for row_id in plan.vanished if row_id not in self._moved_ids]
            with catalog.transaction():
                catalog.remove_ids(gone, catalog.next_seq())
            self.stats.removed += len(gone)
        with catalog.transaction():
            catalog.forget_failures(plan.failed_elsewhere)
            catalog.record_roots(found.roots)

    def _process(self, catalog: Catalog, index: VectorIndex, plan: _Plan) -> None:
        workers = self.options.workers or os.cpu_count() or 2
        # A re-embedded file keeps its row: reuse by hash must not point it at itself. --reindex means embed
        # again, so reusing a vector by content would defeat it.
        self._vanished = {} if self.options.reindex else plan.vanished
        window = 2 * (self.options.batch_size or max(DEFAULT_BATCH_SIZE.values())) + 2 * workers
        lookup = HashLookup(self.data_dir.catalog, self._vanished, enabled=not self.options.reindex)
        known_ids = {path: row.id for path, row in plan.known.items()}
        prepare = make_preparer(self._preprocessing, self.options.max_megapixels, lookup)
        batch = _Batch()
        executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode")
        try:
            for prepared in ordered(executor, prepare, plan.work, window=window):
                self._route(prepared, batch, catalog, known_ids)
                if self._stop.is_set():
                    break
                batch_size = self._batch_size()
                if len(batch.pending) >= batch_size or len(batch) >= 4 * batch_size:
                    self._commit(batch, catalog, index)
                    batch = _Batch()
            self._commit(batch, catalog, index)
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
            lookup.close()

    def _batch_size(self) -> int:
        if self.options.batch_size:
            return self.options.batch_size
        return self._encoder.default_batch_size if self._encoder else DEFAULT_BATCH_SIZE["cpu"]

    def _preprocessing(self) -> Preprocessing:
        return self._get_encoder().preprocessing

    def _get_encoder(self) -> Encoder:
        """The model, loaded by whichever thread first needs it: a run of moves and renames never does."""
        with self._encoder_lock:
            if self._encoder_error is not None:  # one failed load is enough: the other workers stop too
                raise self._encoder_error
            if self._encoder is None:
                assert self.identity is not None
                self.reporter.message(f"loading {self.identity.describe()}")
                try:
                    encoder = load_encoder(self.identity, self.options.device)
                    refresh_query_model(encoder, self.data_dir.query_model, self.data_dir.query_model_outcome)
                    encoder.use_precision(self.options.precision)
                except Exception as error:
                    self._encoder_error = error
                    raise
                self._encoder = encoder
            return self._encoder

    def _route(self, item: Prepared, batch: _Batch, catalog: Catalog, known_ids: dict[str, int]) -> None:
        file = item.found
        if item.error is not None:
            self.reporter.skipped(file.path, item.error)
            batch.failures.append((file.path, file.size, file.mtime_ns, item.error))
            self.stats.skipped += 1
        elif item.reuse_id is not None and item.reuse_id == known_ids.get(file.path):
            batch.touches.append((item.reuse_id, file.size, file.mtime_ns))  # touched, same content
            self.stats.unchanged += 1
        elif item.reuse_id is not None and item.reuse_id in self._vanished:
            if file.path in known_ids:  # moved onto a file that was indexed: that row goes
                batch.replaced.append(known_ids[file.path])
            batch.moves.append(Move(item.reuse_id, file.path, file.size, file.mtime_ns))
            self._moved_ids.add(item.reuse_id)
            self.stats.moved += 1
        elif item.reuse_id is not None:
            source = next(catalog.vectors([item.reuse_id]), None)
            if source is None:  # cannot happen while we hold the writer lock; retried on the next run if it does
                self.reporter.skipped(file.path, "its content changed while indexing")
                self.stats.skipped += 1
            else:
                batch.files.append(_new_file(item, source[1][0]))
        else:
            batch.pending.append(item)

    def _commit(self, batch: _Batch, catalog: Catalog, index: VectorIndex) -> None:
        handled = len(batch)  # before the embedded files join batch.files, or they would count twice
        if batch.pending:
            pixels = np.stack([p.pixels for p in batch.pending])
            vectors = self._get_encoder().embed_pixels(pixels)
            batch.files += [_new_file(p, v) for p, v in zip(batch.pending, vectors)]
        if not len(batch):
            return
        with catalog.transaction():
            seq = catalog.next_seq()
            catalog.remove_ids(batch.replaced, seq)
            catalog.add_files(batch.files, seq)
            catalog.move_files(batch.moves)
            catalog.touch_files(batch.touches)
            catalog.record_failures(batch.failures)
        self.stats.indexed += len(batch.files)
        self.reporter.advanced(handled)
        if time.monotonic() - self._last_save > INDEX_SAVE_INTERVAL_S:
            index.persist(catalog, self.data_dir)
            self._last_save = time.monotonic()


def _new_file(item: Prepared, vector: np.ndarray) -> NewFile:
    file = item.found
    return NewFile(file.path, file.size, file.mtime_ns, item.hash, item.width, item.height, item.taken_at, vector)


def index_paths(data_dir: DataDir, options: IndexOptions, reporter: Reporter | None = None) -> IndexStats:
    return Indexer(data_dir, options, reporter or Reporter()).run()
