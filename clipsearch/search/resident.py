"""A Searcher kept open between requests, for the processes that answer many: `clipsearch serve` and
`clipsearch web`. It follows the database: a catalogue replaced on disk, or switched to another model, is
reopened; rows added by `index` since the last request are caught up before the next one."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from clipsearch.config import DataDir
from clipsearch.models.device import Device
from clipsearch.models.identity import MODEL_SETTING, ModelIdentity
from clipsearch.search.request import QueryOptions
from clipsearch.search.searcher import Searcher


class ResidentSearcher:
    def __init__(self, data_dir: DataDir, device: Device = Device.auto) -> None:
        self.data_dir = data_dir
        self.device = device
        self._searcher: Searcher | None = None
        self._catalog_file: tuple[int, int] | None = None
        self._lock = threading.Lock()  # searching is done one request at a time: it takes milliseconds

    @contextmanager
    def current(self, catch_up: bool = True) -> Iterator[Searcher]:
        """The Searcher for the database as it is now, held by this caller alone until the block ends.
        Without `catch_up`, rows added since the last search may be missing from its index (not its catalogue)."""
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
        if searcher is not None:
            searcher.close()
            self._searcher = None
        self._searcher = Searcher(self.data_dir, device=self.device)
        self._catalog_file = identity
        return self._searcher

    def _catalog_identity(self) -> tuple[int, int] | None:
        try:
            info = self.data_dir.catalog.stat()
        except OSError:
            return None
        return info.st_dev, info.st_ino

    def warm_up(self) -> None:
        """Load everything a query needs now, so the first user does not wait for it."""
        with self.current() as searcher:
            searcher.index  # noqa: B018 (first, so that the model is kept: see Searcher._make_room_for_the_index)
            searcher.texts(["a photo"], QueryOptions(limit=1))

    def close(self) -> None:
        with self._lock:
            if self._searcher is not None:
                self._searcher.close()
                self._searcher = None
