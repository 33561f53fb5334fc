"""Worker-thread side of indexing: read a file, hash it, find a row with the same content, or decode it.

Pillow and hashlib release the GIL, so decoding in threads overlaps with the model on the main thread.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipsearch.errors import ImageError, ImageTooLargeError
from clipsearch.files import content_hash
from clipsearch.imaging.decode import DecodedImage, check_image, decode_image, read_file
from clipsearch.imaging.pixels import prepare_pixels
from clipsearch.indexing.crawl import FoundFile
from clipsearch.models.preprocessing import Preprocessing
from clipsearch.store.sqlite_guard import catalog_error


@dataclass(frozen=True)
class Task:
    """One file to read, with the megapixel limit of the root it was found under."""

    found: FoundFile
    max_megapixels: float


@dataclass(frozen=True)
class Reuse:
    """A catalogued file with the same content: `move` when its own file has vanished (it moved here)."""

    row_id: int
    move: bool


@dataclass(frozen=True)
class Prepared:
    found: FoundFile
    hash: str = ""
    pixels: np.ndarray | None = None
    width: int | None = None
    height: int | None = None
    taken_at: str | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    reuse: Reuse | None = None  # a row with the same content: its vector is reused
    error: str | None = None
    error_kind: str = "bad"  # see clipsearch.store.crawl_memory.Failure


class HashLookup:
    """Finds rows with a given content hash from worker threads, each with its own read connection.

    `table` is `files`, or `staged` while switching models (only vectors of the new model can be reused).
    """

    def __init__(self, catalog_path: Path, vanished: dict[int, str], *, enabled: bool = True,
                 table: str = "files") -> None:
        self._path = catalog_path
        self._enabled = enabled
        self._query = ("SELECT id FROM files WHERE hash = ?" if table == "files"
                       else "SELECT rowid FROM staged WHERE hash = ?")
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._vanished = vanished
        self._claimed: set[int] = set()
        self._lock = threading.Lock()

    def find(self, digest: str) -> Reuse | None:
        if not self._enabled:
            return None
        try:
            connection = getattr(self._local, "connection", None)
            if connection is None:
                connection = sqlite3.connect(self._path.as_uri() + "?mode=ro", uri=True, check_same_thread=False)
                self._local.connection = connection
                with self._lock:
                    self._connections.append(connection)
            ids = [row[0] for row in connection.execute(self._query, (digest,))]
        except sqlite3.Error as error:
            raise catalog_error(self._path, error) from error
        with self._lock:
            # A vanished row is a move, and each can move only once; any other match is a copy.
            for row_id in ids:
                if row_id in self._vanished and row_id not in self._claimed:
                    self._claimed.add(row_id)
                    return Reuse(row_id, move=True)
        return Reuse(ids[0], move=False) if ids else None

    def close(self) -> None:
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()


def match(task: Task, lookup: HashLookup) -> Prepared | tuple[bytes, str]:
    """Read and hash a file: settled at once (a copy or move of a catalogued file, or unreadable), or its bytes
    and hash, to be decoded."""
    try:
        data = read_file(task.found.path)
    except ImageError as error:
        return Prepared(task.found, error=str(error))
    digest = content_hash(data)
    reuse = lookup.find(digest)
    return Prepared(task.found, digest, reuse=reuse) if reuse is not None else (data, digest)


def make_preparer(preprocessing: Callable[[], Preprocessing], lookup: HashLookup,
                  thumbnail: Callable[[FoundFile, DecodedImage], None] | None = None) -> Callable[[Task], Prepared]:
    """The function each worker runs on one file. `preprocessing` is asked only when a file must be decoded,
    so a run of moves and renames never loads the model, and a file that is not an image is refused first.
    `thumbnail`, when given, is handed each decoded picture (upright, at the reduced decode scale)."""

    def prepare(task: Task) -> Prepared:
        matched = match(task, lookup)
        if isinstance(matched, Prepared):
            return matched
        data, digest = matched
        try:
            check_image(data, task.max_megapixels)
            settings = preprocessing()
            decoded = decode_image(data, target_size=settings.image_size, max_megapixels=task.max_megapixels)
            pixels = prepare_pixels(decoded.image, settings.image_size, settings.resize_mode, settings.interpolation)
            if thumbnail is not None:
                thumbnail(task.found, decoded)
            info = decoded.info
            return Prepared(task.found, digest, pixels, info.width, info.height, info.taken_at, info.camera_make,
                            info.camera_model)
        except ImageTooLargeError as error:
            return Prepared(task.found, error=str(error), error_kind=limit_kind(error))
        except ImageError as error:
            return Prepared(task.found, error=str(error))
        except MemoryError:
            return Prepared(task.found, error="out of memory while decoding")

    return prepare


def limit_kind(error: ImageTooLargeError) -> str:
    """The failure kind of an image over a limit: one the user chose is retried when it is raised."""
    return f"limit:{error.megapixels:.6g}" if error.megapixels is not None else "bad"


def ordered(executor: ThreadPoolExecutor, function: Callable, items: Sequence | Iterator, window: int) -> Iterator:
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
