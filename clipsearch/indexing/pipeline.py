"""Indexing: plan the roots, crawl, decode in workers, embed in batches, commit as the one writer.

Decoding runs in threads while the main thread runs the model, so the two overlap. Each batch is
committed in one transaction, so a crash loses at most the batch in flight, and the next run resumes
from what was committed. Removals, and a model switch's swap, wait for a complete run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from clipsearch.config import DataDir
from clipsearch.errors import ModelError, UsageError
from clipsearch.imaging.decode import decode_image, read_file
from clipsearch.imaging.pixels import prepare_pixels
from clipsearch.indexing import journal, switch
from clipsearch.indexing.batches import Batch, BatchWriter
from clipsearch.indexing.crawl import CrawlResult, crawl_roots
from clipsearch.indexing.facts import refresh_facts
from clipsearch.indexing.plan import Plan, make_plan
from clipsearch.indexing.prepare import KNOWN_CONTENT, HashLookup, Prepared, Task, make_preparer, match, ordered
from clipsearch.indexing.quarantine import decode_in_quarantine
from clipsearch.indexing.regions import DEFAULT_GRID
from clipsearch.indexing.request import IndexOptions, IndexStats, Reporter
from clipsearch.indexing.roots import RootPlan, plan_roots
from clipsearch.indexing.tags import stored_tagger
from clipsearch.models.device import DEFAULT_BATCH_SIZE
from clipsearch.models.identity import MODEL_SETTING, ModelIdentity, resolve_model
from clipsearch.models.openvino import recorded_engine
from clipsearch.models.preprocessing import Preprocessing
from clipsearch.models.query_model_export import refresh_query_model
from clipsearch.models.runtime import Encoder, load_indexing_encoder
from clipsearch.store.catalog import Catalog
from clipsearch.store.hnsw import VectorIndex
from clipsearch.store.lock import writer_lock
from clipsearch.store.regions import REGIONS_SETTING
from clipsearch.store.rows import now_iso

log = logging.getLogger(__name__)

INDEX_SAVE_INTERVAL_S = 60.0
RAY_COMMIT_ROWS = 1024  # results arrive embedded, so a batch is only rows to write: larger transactions are faster
RAY_COMMIT_INTERVAL_S = 2.0
PROBE_PHOTOS = 4  # of the run's own, that an OpenVINO conversion is checked on (clipsearch.models.openvino)


def _settled_by_lookup(prepared: Prepared, lookup: HashLookup) -> Prepared:
    """A Ray worker's result checked against the catalogue: content it holds keeps its row's vector (a copy, or
    a move). Workers skip what they know is catalogued, but a restarted one knows nothing, so all are checked."""
    if prepared.error is not None or not prepared.hash:
        return prepared
    reuse = lookup.find(prepared.hash)
    if reuse is not None:
        return replace(prepared, reuse=reuse, vector=None)
    if prepared.reuse == KNOWN_CONTENT:  # only if that row went while we hold the writer lock: retried next run
        return replace(prepared, reuse=None, error="its content changed while indexing")
    return prepared


@dataclass
class _Run:
    """One run's state shared by its steps."""

    catalog: Catalog
    roots: list[RootPlan]
    found: CrawlResult
    plan: Plan
    index: VectorIndex | None  # None while switching models: the swap builds the new model's


class Indexer:
    def __init__(self, data_dir: DataDir, options: IndexOptions, reporter: Reporter) -> None:
        self.data_dir = data_dir
        self.options = options
        self.reporter = reporter
        self.stats = IndexStats()
        self.identity: ModelIdentity | None = None
        self.switch = switch.SwitchPlan()
        self._encoder: Encoder | None = None
        self._encoder_lock = threading.Lock()
        self._encoder_error: Exception | None = None
        self._last_save = time.monotonic()
        self._stop = threading.Event()
        self._probe_paths: list[str] = []

    def run(self) -> IndexStats:
        started = time.monotonic()
        with writer_lock(self.data_dir, self.options.wait_for_lock), \
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
            log.info("stopping after the current batch (Ctrl-C again to stop at once)")

        previous = signal.signal(signal.SIGINT, request_stop)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _run(self, catalog: Catalog) -> None:
        run = self._prepare(catalog)
        self.reporter.started(len(run.plan.tasks))
        try:
            if run.plan.tasks:
                self._process(run)
            if self._stop.is_set():
                raise KeyboardInterrupt  # removals and a switch's swap wait for a complete crawl-and-index run
            self._finish(run)
        except KeyboardInterrupt:
            self.stats.interrupted = True
        except BaseException:
            with contextlib.suppress(Exception):  # the first error is the one worth reporting
                self._wind_up(run)
            raise
        self._wind_up(run)

    def _prepare(self, catalog: Catalog) -> _Run:
        """Choose the model and the roots, crawl, and set what was found against the catalogue."""
        if catalog.settings.get("catalog_id") is None:
            catalog.settings.set("catalog_id", uuid.uuid4().hex)
        options = self.options
        choice = resolve_model(catalog, options.model, options.pretrained, reindex=options.reindex, record=True)
        asked = options.model is not None or options.pretrained is not None
        self.switch = switch.decide(catalog, choice, asked)
        self.identity = self.switch.target or choice.identity
        self.stats.model = self.identity.describe()
        roots = plan_roots(options.roots, options.changes, catalog.roots.all(), everything=self.switch.active)
        if not roots:
            raise UsageError("nothing to index yet: name the folders to index, e.g. `clipsearch index ~/Pictures`")
        found = crawl_roots([(root.path, root.crawl) for root in roots])  # first: a bad root must change nothing
        self.stats.ignored = dict(found.ignored)
        if self.switch.starting:
            self._check_model()  # the new model must load, and work, before the switch is recorded
            switch.begin(catalog, self.identity)
        elif choice.changed and not self.switch.active:
            with catalog.transaction():
                catalog.settings.set_json(MODEL_SETTING, self.identity.to_dict())
        for problem in found.problems:
            self.reporter.skipped(problem.path, problem.reason)
        self.stats.skipped += len(found.problems)
        plan = make_plan(catalog, found, roots, staging=self.switch.active, reindex=options.reindex,
                         regions=self._region_grid(catalog))
        self._probe_paths = [task.found.path for task in plan.tasks[:PROBE_PHOTOS]]
        self.stats.unchanged += plan.unchanged
        self.stats.skipped += plan.remembered_failures
        self.stats.skipped_remembered += plan.remembered_failures
        index = None if self.switch.active else VectorIndex.open(self.data_dir, catalog, self.identity.dim)[0]
        return _Run(catalog, roots, found, plan, index)

    def _region_grid(self, catalog: Catalog) -> int:
        """The grid of region crops new files get: what --regions/--no-regions says now, else what it said last."""
        if self.options.regions is not None:
            with catalog.transaction():
                if self.options.regions:
                    catalog.settings.set_json(REGIONS_SETTING, {"grid": DEFAULT_GRID})
                else:
                    catalog.settings.set(REGIONS_SETTING, "")
                    catalog.regions.remove_all(catalog.next_seq())
        return int((catalog.settings.get_json(REGIONS_SETTING) or {}).get("grid", 0))

    def _process(self, run: _Run) -> None:
        catalog, plan = run.catalog, run.plan
        workers = self.options.workers or os.cpu_count() or 2
        window = 2 * (self.options.batch_size or max(DEFAULT_BATCH_SIZE.values())) + 2 * workers
        # --reindex means embed again: reusing a vector by content would defeat it.
        lookup = HashLookup(catalog.hash_reader(staged=self.switch.active), plan.vanished,
                            enabled=not self.options.reindex)
        assert self.identity is not None
        tagger = None if self.switch.active else stored_tagger(catalog, self.identity)
        writer = BatchWriter(catalog, self.stats, self.reporter, staging=self.switch.active,
                             known_ids={path: row.id for path, row in plan.known.items()}, tagger=tagger)
        prepare = make_preparer(self._preprocessing, lookup, self._thumbnail_keeper())
        sorted_out = journal.sort_out(catalog, plan.tasks)
        executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode")
        try:
            if sorted_out.suspects:
                self._process_suspects(sorted_out.suspects, lookup, writer, run)
            if self.options.ray is not None:
                self._process_on_ray(journal.marked_in_chunks(catalog, sorted_out.rest, chunk=window), lookup,
                                     writer, run)
                return
            batch = Batch()
            tasks = journal.marked_in_chunks(catalog, sorted_out.rest, chunk=window)
            for prepared in ordered(executor, prepare, tasks, window=window):
                writer.route(prepared, batch)
                self.reporter.advanced(1)
                if self._stop.is_set():
                    break
                size = self._batch_size()
                if len(batch.pending) >= size or len(batch) >= 4 * size:
                    self._commit(writer, batch, run)
                    batch = Batch()
            self._commit(writer, batch, run)
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
            lookup.close()
            run.plan.moved_ids.update(writer.moved_ids)

    def _process_on_ray(self, tasks: Iterator[Task], lookup: HashLookup, writer: BatchWriter, run: _Run) -> None:
        """Embed on Ray actors; this process looks up known content and commits, as the one writer."""
        from clipsearch.indexing.cluster import RaySession, unreachable_everywhere

        assert self.identity is not None and self.options.ray is not None
        hashes = run.catalog.staging if self.switch.active else run.catalog.files
        known = frozenset() if self.options.reindex else hashes.content_hashes()
        session = RaySession(self.options.ray, self.identity, self.options.device.value,
                             self.options.precision.value, known)
        self.reporter.phase("embedding")
        batch, last_commit, outcomes = Batch(), time.monotonic(), []
        try:
            for prepared in session.prepared(tasks, self._stop.is_set):
                prepared = _settled_by_lookup(prepared, lookup)
                writer.route(prepared, batch)
                outcomes.append(prepared.error_kind if prepared.error else "ok")
                self.reporter.advanced(1)
                if len(batch) >= RAY_COMMIT_ROWS or time.monotonic() - last_commit > RAY_COMMIT_INTERVAL_S:
                    self._commit(writer, batch, run)
                    batch, last_commit = Batch(), time.monotonic()
            self._commit(writer, batch, run)
        finally:
            session.close()
        if unreachable_everywhere(outcomes, self.options.ray):
            log.info("no Ray worker could read a single file: if the workers do not mount this library at the "
                     "same path, add --ray-ship-bytes")

    def _thumbnail_keeper(self):
        if not self.options.thumbnails:
            return None
        from clipsearch.imaging.thumbnails import ThumbnailCache

        cache = ThumbnailCache(self.data_dir.thumbnails)
        return lambda found, decoded: cache.keep_decoded(found.path, found.size, found.mtime_ns, decoded)

    def _process_suspects(self, suspects: list[Task], lookup: HashLookup, writer: BatchWriter, run: _Run) -> None:
        """Files in flight when a run died: decoded in quarantine, where one that kills its decoder is named."""
        log.info(f"decoding {len(suspects)} file{'s' if len(suspects) != 1 else ''} that were being read when "
                 "an earlier run died, in a separate process")
        batch = Batch()
        waiting: list[tuple[Task, str]] = []
        for task in suspects:
            matched = match(task, lookup)
            if isinstance(matched, Prepared):
                writer.route(matched, batch)
                self.reporter.advanced(1)
            else:
                waiting.append((task, matched[1]))
        if waiting:
            for prepared in decode_in_quarantine(waiting, self._preprocessing()):
                writer.route(prepared, batch)
                self.reporter.advanced(1)
        self._commit(writer, batch, run)

    def _commit(self, writer: BatchWriter, batch: Batch, run: _Run) -> None:
        writer.commit(batch, self._embed)
        # A cluster can deliver vectors faster than HNSW takes them in (bench/ray_writer.py): with --ray the index is
        # caught up once, at the end, and a search in the meantime catches up from the catalogue by itself.
        periodic = self.options.ray is None
        if periodic and run.index is not None and time.monotonic() - self._last_save > INDEX_SAVE_INTERVAL_S:
            run.index.persist(run.catalog, self.data_dir)
            self._last_save = time.monotonic()

    def _embed(self, pixels: np.ndarray) -> np.ndarray:
        return self._get_encoder().embed_pixels(pixels)

    def _finish(self, run: _Run) -> None:
        """After a complete run: drop the rows of files that are gone, remember the roots, finish a switch."""
        catalog, plan = run.catalog, run.plan
        gone = [row_id for row_id in plan.vanished if row_id not in plan.moved_ids]
        with catalog.transaction():
            if gone:
                catalog.files.remove(gone, catalog.next_seq())
            catalog.staging.unstage(plan.unstaged)
            catalog.failures.forget(plan.failed_elsewhere)
            catalog.roots.record({root.path: root.record(run.found.linked.get(root.path, ()))
                                  for root in run.roots})
            catalog.settings.set("last_indexed", now_iso())
        self.stats.removed += len(gone)
        if not self.switch.active:  # a switch's swap brings every file's facts
            self._refresh_facts(run)
        if self.switch.active:
            assert self.identity is not None
            self.stats.removed += switch.complete(catalog, self.data_dir, self.identity)
            self.stats.switched_to = self.identity.describe()
            run.index = VectorIndex.open(self.data_dir, catalog, self.identity.dim)[0]

    def _refresh_facts(self, run: _Run) -> None:
        """Read the dates and cameras of the files an earlier version indexed without them (headers only)."""
        seen = {file.path for file in run.found.files}
        stale = [(path, file_id) for path, file_id in run.catalog.files.stale_facts(list(run.found.roots)).items()
                 if path in seen]
        if stale:
            count = refresh_facts(run.catalog, stale, self.options.workers or os.cpu_count() or 2)
            log.info(f"read the dates and cameras of {count} photos indexed by an earlier version")

    def _wind_up(self, run: _Run) -> None:
        """Whatever way the run ended, it did not crash: nothing in flight is a suspect. Save the index."""
        with run.catalog.transaction():
            run.catalog.in_flight.clear()
        if run.index is not None:
            run.index.persist(run.catalog, self.data_dir)

    def _check_model(self) -> None:
        encoder = self._get_encoder()
        size = encoder.preprocessing.image_size
        probe = np.concatenate([encoder.embed_pixels(np.full((1, size, size, 3), 128, np.uint8)),
                                encoder.embed_texts(["a photo"])])
        if probe.shape[1] != encoder.identity.dim or not np.all(np.isfinite(probe)):
            raise ModelError(f"{encoder.identity.describe()} loads but gives no usable embeddings: check the "
                             "checkpoint (nothing was changed)")

    def _batch_size(self) -> int:
        if self.options.batch_size:
            return self.options.batch_size
        return self._encoder.default_batch_size if self._encoder else DEFAULT_BATCH_SIZE["cpu"]

    _recorded_preprocessing: Preprocessing | None = None  # read once from a converted tower's manifest

    def _preprocessing(self) -> Preprocessing:
        """The model's input settings. A converted tower's manifest holds them, so decoding can start while the
        model loads (on the embedding thread) instead of after it."""
        if self._encoder is None and self.identity is not None:
            if self._recorded_preprocessing is None:
                recorded = recorded_engine(self.data_dir.openvino, self.identity)
                self._recorded_preprocessing = Preprocessing(**recorded.preprocessing) if recorded else None
            if self._recorded_preprocessing is not None:
                return self._recorded_preprocessing
        return self._get_encoder().preprocessing

    def _probe_pictures(self, preprocessing: Preprocessing) -> np.ndarray:
        """A few of this run's photos at the model's size: with synthetic ones, what a converted tower is checked on."""
        pictures = []
        for path in self._probe_paths:
            with contextlib.suppress(Exception):  # one that cannot be read is simply not a probe
                image = decode_image(read_file(path), target_size=preprocessing.image_size).image
                pictures.append(prepare_pixels(image, preprocessing.image_size, preprocessing.resize_mode,
                                               preprocessing.interpolation))
        size = preprocessing.image_size
        return np.stack(pictures) if pictures else np.empty((0, size, size, 3), np.uint8)

    def _get_encoder(self) -> Encoder:
        """The model, loaded by whichever thread first needs it: a run of moves and renames never does."""
        with self._encoder_lock:
            if self._encoder_error is not None:  # one failed load is enough: the other workers stop too
                raise self._encoder_error
            if self._encoder is None:
                try:
                    self._encoder = self._load_encoder()
                except Exception as error:
                    self._encoder_error = error
                    raise
            return self._encoder

    def _load_encoder(self) -> Encoder:
        assert self.identity is not None
        self.reporter.phase(f"loading {self.identity.describe()}")
        options = self.options
        encoder = load_indexing_encoder(self.identity, options.device, options.precision, options.engine,
                                        self.data_dir.openvino, self._probe_pictures)
        folder, outcome = ((self.data_dir.next_query_model, self.data_dir.next_query_model_outcome)
                           if self.switch.active else (self.data_dir.query_model, self.data_dir.query_model_outcome))
        refresh_query_model(encoder, folder, outcome, announce=lambda: self.reporter.phase("writing the query model "
                                                                                             "(queries skip torch)"))
        encoder.use_precision(self.options.precision)
        self.reporter.phase("embedding")
        return encoder


def index_paths(data_dir: DataDir, options: IndexOptions, reporter: Reporter | None = None) -> IndexStats:
    return Indexer(data_dir, options, reporter or Reporter()).run()
