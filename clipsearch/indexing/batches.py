"""Batches: prepared files routed to what each needs (embedding, a move, a copy, a failure), committed together.

Each batch is one transaction: its files, moves and failures, and the in-flight marks it clears, so a
crash loses at most the batch in flight. During a model switch the vectors go to the `staged` table
instead, where queries (which use the old model) do not see them until every file is done.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from clipsearch.indexing.prepare import Prepared
from clipsearch.indexing.request import IndexStats, Reporter
from clipsearch.indexing.tags import tag_new_files
from clipsearch.models.zero_shot import Tagger
from clipsearch.store.catalog import Catalog
from clipsearch.store.crawl_memory import Failure
from clipsearch.store.regions import NewRegion
from clipsearch.store.rows import Move, NewFile

EMBED_CHUNK = 256  # images per model call when a batch's region crops multiply its pictures


@dataclass
class Batch:
    files: list[NewFile] = field(default_factory=list)
    pending: list[Prepared] = field(default_factory=list)  # waiting for the model
    moves: list[Move] = field(default_factory=list)
    replaced: list[int] = field(default_factory=list)  # rows whose path a moved file now takes
    touches: list[tuple[int, int, int]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    done: list[str] = field(default_factory=list)  # every path the batch settles, to clear from in_flight
    regions: dict[str, list[NewRegion]] = field(default_factory=dict)  # `index --regions`: each new file's

    def __len__(self) -> int:
        return len(self.files) + len(self.pending) + len(self.moves) + len(self.touches) + len(self.failures)


class BatchWriter:
    def __init__(self, catalog: Catalog, stats: IndexStats, reporter: Reporter, *, staging: bool,
                 known_ids: dict[str, int], tagger: Tagger | None = None) -> None:
        self.catalog = catalog
        self.stats = stats
        self.reporter = reporter
        self.staging = staging  # a model switch: write to `staged`
        self.known_ids = known_ids  # path -> row id of the files catalogued under the roots being crawled
        self.moved_ids: set[int] = set()
        self.tagger = tagger  # the database's vocabulary: new files are tagged as they are committed

    def route(self, item: Prepared, batch: Batch) -> None:
        file = item.found
        batch.done.append(file.path)
        reuse = item.reuse
        if item.error is not None:
            self.reporter.skipped(file.path, item.error)
            batch.failures.append(Failure(file.path, file.size, file.mtime_ns, item.error, item.error_kind))
            self.stats.skipped += 1
        elif item.vector is not None:
            batch.files.append(_new_file(item, item.vector))
            if item.region_vectors is not None:
                batch.regions[file.path] = _regions(item.region_boxes, item.region_vectors)
        elif reuse is None:
            batch.pending.append(item)
        elif not self.staging and reuse.row_id == self.known_ids.get(file.path):
            batch.touches.append((reuse.row_id, file.size, file.mtime_ns))  # touched, same content
            self.stats.unchanged += 1
        elif reuse.move and not self.staging:
            if file.path in self.known_ids:  # moved onto a file that was indexed: that row goes
                batch.replaced.append(self.known_ids[file.path])
            batch.moves.append(Move(reuse.row_id, file.path, file.size, file.mtime_ns))
            self.moved_ids.add(reuse.row_id)
            self.stats.moved += 1
        else:
            self._copy(item, batch)

    def _copy(self, item: Prepared, batch: Batch) -> None:
        """A copy of a catalogued file: its vector and facts, without decoding or embedding."""
        assert item.reuse is not None
        source = (self.catalog.staging.reusable(item.reuse.row_id) if self.staging
                  else self.catalog.files.reusable(item.reuse.row_id))
        if source is None:  # cannot happen while we hold the writer lock; retried on the next run if it does
            self.reporter.skipped(item.found.path, "its content changed while indexing")
            self.stats.skipped += 1
            return
        record, vector = source
        file = item.found
        batch.files.append(NewFile(file.path, file.size, file.mtime_ns, item.hash, record.width, record.height,
                                   record.taken_at, vector, record.camera_make, record.camera_model))

    def commit(self, batch: Batch, embed: Callable[[np.ndarray], np.ndarray]) -> None:
        """Embed what waits for the model, then write the batch in one transaction."""
        if batch.pending:
            self._embed_pending(batch, embed)
        if not len(batch) and not batch.done:
            return
        with self.catalog.transaction():
            if self.staging:
                self.catalog.staging.stage(batch.files)
            else:
                seq = self.catalog.next_seq()
                self.catalog.files.remove(batch.replaced, seq)
                self.catalog.files.add(batch.files, seq)
                self.catalog.regions.replace(batch.regions, seq)
                self.catalog.files.move(batch.moves)
                self.catalog.files.touch(batch.touches)
                if self.tagger is not None:
                    tag_new_files(self.catalog, self.tagger, batch.files)
            self.catalog.failures.record(batch.failures)
            self.catalog.in_flight.clear(batch.done)
        self.stats.indexed += len(batch.files)

    @staticmethod
    def _embed_pending(batch: Batch, embed: Callable[[np.ndarray], np.ndarray]) -> None:
        """The files' pixels and their region crops through the model, EMBED_CHUNK at a time."""
        crops = [p.region_pixels for p in batch.pending if p.region_pixels is not None]
        pixels = np.concatenate([np.stack([p.pixels for p in batch.pending]), *crops])
        vectors = np.concatenate([embed(pixels[start:start + EMBED_CHUNK])
                                  for start in range(0, len(pixels), EMBED_CHUNK)])
        batch.files += [_new_file(p, v) for p, v in zip(batch.pending, vectors)]
        start = len(batch.pending)
        for item in batch.pending:
            if item.region_pixels is not None:
                count = len(item.region_pixels)
                batch.regions[item.found.path] = _regions(item.region_boxes, vectors[start:start + count])
                start += count


def _regions(boxes: tuple[tuple[int, int, int, int], ...], vectors: np.ndarray) -> list[NewRegion]:
    return [NewRegion(*box, vector) for box, vector in zip(boxes, vectors)]


def _new_file(item: Prepared, vector: np.ndarray) -> NewFile:
    file = item.found
    return NewFile(file.path, file.size, file.mtime_ns, item.hash, item.width, item.height, item.taken_at, vector,
                   item.camera_make, item.camera_model)
