"""Answering in this process: one open database with its model, kept between calls.

The resident server keeps one for its whole life, and a `Library` in a script or a command keeps one while it is
open, so nothing loads the model twice. It follows the database: a catalogue replaced on disk, or switched to
another model, is reopened; rows added by `index` since the last call are caught up before the next one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np

from clipsearch.config import DataDir
from clipsearch.insight.classify import Classification, classify
from clipsearch.insight.duplicates import DuplicateGroup, Thresholds, find_duplicates
from clipsearch.insight.locate import Located, locate, with_boxes
from clipsearch.insight.tagging import TagReport, tag_library
from clipsearch.insight.vocabulary import Vocabulary
from clipsearch.models.identity import MODEL_SETTING, ModelChoice, ModelIdentity
from clipsearch.models.zero_shot import TagRule
from clipsearch.search.request import QueryKind, QueryOptions
from clipsearch.search.results import SearchAnswer
from clipsearch.search.searcher import Searcher


class LocalLibrary:
    """The work behind `Library`'s questions, done here. Thread-safe: one call at a time holds the database."""

    def __init__(self, data_dir: DataDir, choice: ModelChoice | None = None, *, resident: bool = False) -> None:
        self.data_dir = data_dir
        self.choice = choice or ModelChoice()
        self.resident = resident  # a server's: pictures from outside the catalogue decode in a child process
        self.answered = 0
        self._searcher: Searcher | None = None
        self._catalog_file: tuple[int, int] | None = None
        self._lock = threading.RLock()  # searching is done one request at a time: it takes milliseconds

    @contextmanager
    def searcher(self, catch_up: bool = True) -> Iterator[Searcher]:
        """The Searcher for the database as it is now, held by this caller alone until the block ends.
        Without `catch_up`, rows added since the last call may be missing from its index (not its catalogue)."""
        with self._lock:
            yield self._open(catch_up)

    def _open(self, catch_up: bool) -> Searcher:
        identity = self._catalog_identity()
        searcher = self._searcher
        if searcher is not None and identity == self._catalog_file:
            stored = searcher.catalog.settings.get_json(MODEL_SETTING)
            if stored and ModelIdentity.from_dict(stored).same_model(searcher.identity):
                if catch_up:
                    searcher.catch_up()
                return searcher
        self._release()
        choice = self.choice
        self._searcher = Searcher(self.data_dir, choice.model, choice.pretrained, choice.device, choice.precision,
                                  isolate_decoding=self.resident)
        self._catalog_file = identity
        return self._searcher

    def _catalog_identity(self) -> tuple[int, int] | None:
        try:
            info = self.data_dir.catalog.stat()
        except OSError:
            return None
        return info.st_dev, info.st_ino

    def _release(self) -> None:
        if self._searcher is not None:
            self._searcher.close()
            self._searcher = None

    def warm_up(self) -> None:
        """Load everything a query needs now, so the first user does not wait for it."""
        with self.searcher() as searcher:
            searcher.index  # noqa: B018 (first, so that the model is kept: see Searcher.index)
            searcher.search(QueryKind.text, ["a photo"], QueryOptions(limit=1))

    def close(self) -> None:
        with self._lock:
            self._release()

    @contextmanager
    def _answering(self, catch_up: bool = True) -> Iterator[Searcher]:
        """searcher(), counting the request as answered (`status` and the server's hello show the count) when the
        block ends without an error."""
        with self.searcher(catch_up) as searcher:
            yield searcher
            self.answered += 1

    def search(self, kind: QueryKind, queries: list[str], options: QueryOptions, where: bool = False,
               ) -> SearchAnswer:
        with self._answering() as searcher:
            answer = searcher.search(kind, queries, options)
            return with_boxes(searcher.embedder, answer) if where and answer.results else answer

    def like_row(self, row_id: int, options: QueryOptions) -> SearchAnswer:
        with self.searcher() as searcher:
            return searcher.like_row(row_id, options)

    def like_vector(self, vector: np.ndarray, label: str, options: QueryOptions) -> SearchAnswer:
        with self.searcher() as searcher:
            return searcher.like_vector(vector, label, options)

    def picture_vector(self, data: bytes, name: str) -> np.ndarray:
        with self.searcher(catch_up=False) as searcher:
            return searcher.picture_vector(data, name)

    def classify(self, images: Sequence[str], labels: Sequence[str], templates: Sequence[str] = (),
                 top: int = 5) -> list[Classification]:
        with self._answering(catch_up=False) as searcher:
            return classify(searcher, images, labels, templates, top)

    def locate(self, text: str, images: Sequence[str], top: int = 3,
               skipped: Callable[[str, str], None] = lambda path, reason: None) -> list[Located]:
        with self._answering(catch_up=False) as searcher:
            return list(locate(searcher.embedder, text, images, top, skipped))

    def duplicates(self, within: Sequence[str] = (), include_similar: bool = False,
                   threshold: float | None = None) -> tuple[list[DuplicateGroup], Thresholds]:
        with self._answering() as searcher:
            return find_duplicates(searcher, within, include_similar, threshold)

    def tag(self, vocabulary: Vocabulary, rule: TagRule) -> TagReport:
        """Tag every photo (the caller holds the writer lock)."""
        with self.searcher(catch_up=False) as searcher:
            return tag_library(searcher, vocabulary, rule)
