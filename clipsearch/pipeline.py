"""Indexing: crawl -> decode workers -> batches -> encoder -> catalogue, with progress.

Decoding runs in threads (Pillow and hashlib release the GIL) while the main thread runs
the model, so the two overlap. Each batch is committed in one transaction, so a crash
loses at most the batch in flight, and the next run resumes from what was committed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import signal
import sqlite3
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clipsearch.catalog import Catalog, Move, NewFile
from clipsearch.config import DataDir
from clipsearch.crawl import CrawlOptions, FoundFile, crawl
from clipsearch.encoder import DEFAULT_BATCH_SIZE, Encoder
from clipsearch.errors import CatalogError, ImageError, LockedError
from clipsearch.images import decode_image, prepare_pixels, read_file
from clipsearch.models import MODEL_SETTING, ModelIdentity, resolve_model
from clipsearch.sqlite_guard import catalog_error
from clipsearch.vectors import VectorIndex

INDEX_SAVE_INTERVAL_S = 60.0


@dataclass(frozen=True)
class IndexOptions:
    roots: tuple[str, ...]
    crawl: CrawlOptions = field(default_factory=CrawlOptions)
    model: str | None = None
    pretrained: str | None = None
    reindex: bool = False
    device: str = "auto"
    precision: str = "auto"
    batch_size: int | None = None
    workers: int | None = None
    max_megapixels: float = 200.0
    wait_for_lock: bool = True


@dataclass
class IndexStats:
    indexed: int = 0
    unchanged: int = 0
    moved: int = 0
    removed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    model: str = ""


@dataclass
class Reporter:
    """How the core tells the CLI what is happening; the defaults say nothing."""

    message: Callable[[str], None] = lambda text: None
    skipped: Callable[[str, str], None] = lambda path, reason: None
    started: Callable[[int], None] = lambda total: None
    advanced: Callable[[int], None] = lambda count: None


@contextlib.contextmanager
def writer_lock(data_dir: DataDir, wait: bool, reporter: Reporter) -> Iterator[None]:
    """One writer per database: an advisory lock that the OS releases if the process dies."""
    try:
        data_dir.root.mkdir(parents=True, exist_ok=True)
        handle = open(data_dir.lock, "a+")  # noqa: SIM115 (held for the whole block)
    except OSError as error:
        raise CatalogError(f"cannot write to {data_dir.root}: {error.strerror or error}") from error
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            if not wait:
                raise LockedError(f"{data_dir.root} is being written by {holder}; try again when it finishes, "
                                  "or leave out --no-wait to wait for it") from None
            reporter.message(f"waiting for {holder} to finish writing {data_dir.root} (--no-wait to fail instead)")
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(f"clipsearch pid {os.getpid()}")
        handle.flush()
        yield
    finally:
        handle.close()


@dataclass(frozen=True)
class _Prepared:
    found: FoundFile
    hash: str = ""
    pixels: np.ndarray | None = None
    width: int | None = None
    height: int | None = None
    taken_at: str | None = None
    reuse_id: int | None = None  # a row with the same content: its vector is reused
    error: str | None = None


class _HashLookup:
    """Finds rows with a given content hash from worker threads, each with its own read connection."""

    def __init__(self, catalog_path: Path, vanished: dict[int, str], enabled: bool = True) -> None:
        self._path = catalog_path
        self._enabled = enabled
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._vanished = vanished
        self._claimed: set[int] = set()
        self._lock = threading.Lock()

    def find(self, digest: str) -> int | None:
        if not self._enabled:
            return None
        try:
            connection = getattr(self._local, "connection", None)
            if connection is None:
                connection = sqlite3.connect(self._path.as_uri() + "?mode=ro", uri=True, check_same_thread=False)
                self._local.connection = connection
                with self._lock:
                    self._connections.append(connection)
            ids = [row[0] for row in connection.execute("SELECT id FROM files WHERE hash = ?", (digest,))]
        except sqlite3.Error as error:
            raise catalog_error(self._path, error) from error
        with self._lock:
            # A vanished row is a move, and each can move only once; any other row is a copy.
            for row_id in ids:
                if row_id in self._vanished and row_id not in self._claimed:
                    self._claimed.add(row_id)
                    return row_id
        return ids[0] if ids else None

    def close(self) -> None:
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()


@dataclass
class _Batch:
    files: list[NewFile] = field(default_factory=list)
    pending: list[_Prepared] = field(default_factory=list)  # waiting for the model
    moves: list[Move] = field(default_factory=list)
    replaced: list[int] = field(default_factory=list)  # rows whose path a moved file now takes
    touches: list[tuple[int, int, int]] = field(default_factory=list)
    failures: list[tuple[str, int, int, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.files) + len(self.pending) + len(self.moves) + len(self.touches) + len(self.failures)


class Indexer:
    def __init__(self, data_dir: DataDir, options: IndexOptions, reporter: Reporter) -> None:
        self.data_dir = data_dir
        self.options = options
        self.reporter = reporter
        self.stats = IndexStats()
        self._encoder: Encoder | None = None
        self._encoder_lock = threading.Lock()
        self._encoder_error: Exception | None = None
        self._last_save = time.monotonic()
        self._vanished: dict[int, str] = {}
        self._moved_ids: set[int] = set()
        self._stop = threading.Event()

    def run(self) -> IndexStats:
        started = time.monotonic()
        with writer_lock(self.data_dir, self.options.wait_for_lock, self.reporter), self._graceful_interrupts():
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
        options = self.options
        if catalog.get_setting("catalog_id") is None:
            catalog.set_setting("catalog_id", uuid.uuid4().hex)
        identity, changed = resolve_model(catalog, options.model, options.pretrained, reindex=options.reindex)
        self.identity = identity
        self.stats.model = identity.describe()
        roots = list(options.roots)
        if changed and catalog.count():
            # A new model makes every stored vector meaningless: start over, on every root indexed so far.
            previous = [root for root in catalog.stats().roots if root not in roots]
            for root in previous:
                if os.path.exists(root):
                    roots.append(root)
                else:
                    self.reporter.message(f"not re-indexing {root}: it no longer exists")
        found = crawl(roots, options.crawl)  # before anything is removed: a bad root must change nothing
        if changed:
            with catalog.transaction():
                if catalog.count():
                    catalog.remove_under(["/"], catalog.next_seq())
                catalog.set_json(MODEL_SETTING, identity.to_dict())
        for problem in found.problems:
            self.reporter.skipped(problem.path, problem.reason)
        self.stats.skipped += len(found.problems)
        index, _ = VectorIndex.open(self.data_dir, catalog, identity.dim)

        known = catalog.known_files(found.roots)
        failures = catalog.known_failures(found.roots)
        work: list[FoundFile] = []
        seen: set[str] = set()
        for file in found.files:
            seen.add(file.path)
            row = known.get(file.path)
            if row and (row.size, row.mtime_ns) == (file.size, file.mtime_ns) and not options.reindex:
                self.stats.unchanged += 1
            elif failures.get(file.path) == (file.size, file.mtime_ns) and not options.reindex:
                self.stats.skipped += 1  # known bad and unchanged: reported when it first failed
            else:
                work.append(file)
        protected = tuple(d.rstrip("/") + "/" for d in found.unreadable_dirs)
        vanished = {row.id: path for path, row in known.items() if path not in seen and not path.startswith(protected)}
        # A re-embedded file keeps its row: reuse by hash must not point it at itself.
        reusable = {} if options.reindex else vanished

        self.reporter.started(len(work))
        try:
            if work:
                self._process(catalog, index, work, known, reusable)
            if self._stop.is_set():
                raise KeyboardInterrupt  # removals wait for a complete crawl-and-index run
            if vanished:
                gone = [row_id for row_id in vanished if row_id not in self._moved_ids]
                with catalog.transaction():
                    catalog.remove_ids(gone, catalog.next_seq())
                self.stats.removed += len(gone)
            failed_paths = [p for p in failures if p not in seen and not p.startswith(protected)]
            with catalog.transaction():
                catalog.forget_failures(failed_paths)
                catalog.record_roots(found.roots)
        except KeyboardInterrupt:
            self.stats.interrupted = True
        except BaseException:
            with contextlib.suppress(Exception):  # the first error is the one worth reporting
                self._save_index(catalog, index)
            raise
        self._save_index(catalog, index)

    def _save_index(self, catalog: Catalog, index: VectorIndex) -> None:
        index.catch_up(catalog)
        index.save(self.data_dir, catalog.get_setting("catalog_id") or "")
        catalog.prune_tombstones(index.seq)
        self._last_save = time.monotonic()

    def _process(self, catalog: Catalog, index: VectorIndex, work: list[FoundFile],
                 known: dict, reusable: dict[int, str]) -> None:
        workers = self.options.workers or os.cpu_count() or 2
        self._vanished = reusable
        window = 2 * (self.options.batch_size or max(DEFAULT_BATCH_SIZE.values())) + 2 * workers
        # --reindex means embed again: reusing a vector by content would defeat it.
        lookup = _HashLookup(self.data_dir.catalog, reusable, enabled=not self.options.reindex)
        known_ids = {path: row.id for path, row in known.items()}
        prepare = _make_preparer(self._get_encoder, self.options.max_megapixels, lookup)
        batch = _Batch()
        executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode")
        try:
            for prepared in _ordered(executor, prepare, work, window=window):
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

    def _get_encoder(self) -> Encoder:
        """The model, loaded by whichever thread first needs it: a run of moves and renames never does."""
        with self._encoder_lock:
            if self._encoder_error is not None:  # one failed load is enough: the other workers stop too
                raise self._encoder_error
            if self._encoder is None:
                self.reporter.message(f"loading {self.identity.describe()}")
                try:
                    self._encoder = Encoder(self.identity, self.options.device, self.options.precision,
                                           export_to=self.data_dir.query_model)
                except Exception as error:
                    self._encoder_error = error
                    raise
            return self._encoder

    def _route(self, item: _Prepared, batch: _Batch, catalog: Catalog, known_ids: dict[str, int]) -> None:
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
            self._save_index(catalog, index)


def _new_file(item: _Prepared, vector: np.ndarray) -> NewFile:
    file = item.found
    return NewFile(file.path, file.size, file.mtime_ns, item.hash, item.width, item.height, item.taken_at, vector)


def _make_preparer(get_encoder: Callable[[], Encoder], max_megapixels: float, lookup: _HashLookup,
                   ) -> Callable[[FoundFile], _Prepared]:
    def prepare(found: FoundFile) -> _Prepared:
        try:
            data = read_file(found.path)
            digest = hashlib.blake2b(data, digest_size=16).hexdigest()
            reuse = lookup.find(digest)
            if reuse is not None:
                return _Prepared(found, digest, reuse_id=reuse)
            settings = get_encoder().preprocessing
            decoded = decode_image(data, target_size=settings.image_size, max_megapixels=max_megapixels)
            pixels = prepare_pixels(decoded.image, settings.image_size, settings.resize_mode, settings.interpolation)
            info = decoded.info
            return _Prepared(found, digest, pixels, info.width, info.height, info.taken_at)
        except ImageError as error:
            return _Prepared(found, error=str(error))
        except MemoryError:
            return _Prepared(found, error="out of memory while decoding")

    return prepare


def _ordered(executor: ThreadPoolExecutor, function: Callable, items: Sequence, window: int) -> Iterator:
    """executor.map with a bounded look-ahead, so memory stays flat however many files there are."""
    pending: deque[Future] = deque()
    iterator = iter(items)
    for item in iterator:
        pending.append(executor.submit(function, item))
        if len(pending) >= window:
            break
    while pending:
        result = pending.popleft().result()
        for item in iterator:
            pending.append(executor.submit(function, item))
            break
        yield result


def index_paths(data_dir: DataDir, options: IndexOptions, reporter: Reporter | None = None) -> IndexStats:
    return Indexer(data_dir, options, reporter or Reporter()).run()


def forget_paths(data_dir: DataDir, paths: Sequence[str], wait: bool = True, reporter: Reporter | None = None) -> int:
    """Remove files and folders from the catalogue and the index; returns how many files went."""
    reporter = reporter or Reporter()
    with writer_lock(data_dir, wait, reporter):
        catalog = Catalog(data_dir.catalog)
        try:
            with catalog.transaction():
                removed = catalog.remove_under(list(paths), catalog.next_seq())
            identity = ModelIdentity.from_dict(catalog.get_json(MODEL_SETTING) or {})
            if removed and identity.dim:
                index, _ = VectorIndex.open(data_dir, catalog, identity.dim)  # catches up the removals
                index.save(data_dir, catalog.get_setting("catalog_id") or "")
                catalog.prune_tombstones(index.seq)
        finally:
            catalog.close()
    return removed
