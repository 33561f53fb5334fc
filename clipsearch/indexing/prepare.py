"""Worker-thread side of indexing: read a file, hash it, find a row with the same content, or decode it.

Pillow and hashlib release the GIL, so decoding in threads overlaps with the model on the main thread.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipsearch.errors import ImageError
from clipsearch.imaging.decode import decode_image, read_file
from clipsearch.imaging.pixels import prepare_pixels
from clipsearch.indexing.crawl import FoundFile
from clipsearch.models.preprocessing import Preprocessing
from clipsearch.store.sqlite_guard import catalog_error


@dataclass(frozen=True)
class Prepared:
    found: FoundFile
    hash: str = ""
    pixels: np.ndarray | None = None
    width: int | None = None
    height: int | None = None
    taken_at: str | None = None
    reuse_id: int | None = None  # a row with the same content: its vector is reused
    error: str | None = None


class HashLookup:
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


def make_preparer(preprocessing: Callable[[], Preprocessing], max_megapixels: float, lookup: HashLookup,
                  ) -> Callable[[FoundFile], Prepared]:
    """The function each worker runs on one file. `preprocessing` is asked only when a file must be decoded,
    so a run of moves and renames never loads the model."""

    def prepare(found: FoundFile) -> Prepared:
        try:
            data = read_file(found.path)
            digest = hashlib.blake2b(data, digest_size=16).hexdigest()
            reuse = lookup.find(digest)
            if reuse is not None:
                return Prepared(found, digest, reuse_id=reuse)
            settings = preprocessing()
            decoded = decode_image(data, target_size=settings.image_size, max_megapixels=max_megapixels)
            pixels = prepare_pixels(decoded.image, settings.image_size, settings.resize_mode, settings.interpolation)
            info = decoded.info
            return Prepared(found, digest, pixels, info.width, info.height, info.taken_at)
        except ImageError as error:
            return Prepared(found, error=str(error))
        except MemoryError:
            return Prepared(found, error="out of memory while decoding")

    return prepare


def ordered(executor: ThreadPoolExecutor, function: Callable, items: Sequence, window: int) -> Iterator:
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
