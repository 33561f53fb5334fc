"""Worker-thread side of indexing: read a file, hash it, find a row with the same content, or decode it.

Pillow and hashlib release the GIL, so decoding in threads overlaps with the model on the main thread.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from clipsearch.errors import ImageError, ImageTooLargeError
from clipsearch.filesystem import content_hash
from clipsearch.imaging.decode import DecodedImage, check_image, decode_image, read_file
from clipsearch.imaging.pixels import prepare_pixels
from clipsearch.indexing.crawl import FoundFile
from clipsearch.models.preprocessing import Preprocessing
from clipsearch.store.hash_reader import HashReader


@dataclass(frozen=True)
class Task:
    """One file to read, with the megapixel limit of the root it was found under."""

    found: FoundFile
    max_megapixels: float
    regions: int = 0  # `index --regions`: a grid x grid of region crops to embed too (clipsearch.indexing.regions)
    fresh: bool = False  # decode even if its content is catalogued (its regions are missing)


@dataclass(frozen=True)
class Reuse:
    """A catalogued file with the same content: `move` when its own file has vanished (it moved here)."""

    row_id: int
    move: bool


# What a worker away from the catalogue (a Ray actor) answers for content the catalogue already holds: the
# driver, which can read the catalogue, finds which row it is.
KNOWN_CONTENT = Reuse(-1, move=False)


class ContentLookup(Protocol):
    def find(self, digest: str) -> Reuse | None: ...


def read_task(task: Task) -> bytes:
    return read_file(task.found.path)


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
    region_pixels: np.ndarray | None = None  # the region crops at the model's size, with their boxes
    region_boxes: tuple[tuple[int, int, int, int], ...] = ()
    region_vectors: np.ndarray | None = None  # embedded already (by a Ray actor)
    vector: np.ndarray | None = None  # embedded already (by a Ray actor): nothing waits for the model
    error: str | None = None
    error_kind: str = "bad"  # see clipsearch.store.crawl_memory.Failure


class HashLookup:
    """Finds rows with a given content hash from worker threads (through the catalogue's HashReader).

    The reader finds `files`, or `staged` files while switching models (only vectors of the new model can be
    reused).
    """

    def __init__(self, reader: HashReader, vanished: dict[int, str], *, enabled: bool = True) -> None:
        self._reader = reader
        self._enabled = enabled
        self._vanished = vanished
        self._claimed: set[int] = set()
        self._lock = threading.Lock()

    def find(self, digest: str) -> Reuse | None:
        if not self._enabled:
            return None
        ids = self._reader.ids_with_hash(digest)
        with self._lock:
            # A vanished row is a move, and each can move only once; any other match is a copy.
            for row_id in ids:
                if row_id in self._vanished and row_id not in self._claimed:
                    self._claimed.add(row_id)
                    return Reuse(row_id, move=True)
        return Reuse(ids[0], move=False) if ids else None

    def close(self) -> None:
        self._reader.close()


def match(task: Task, lookup: ContentLookup, read: Callable[[Task], bytes] = read_task,
          ) -> Prepared | tuple[bytes, str]:
    """Read and hash a file: settled at once (a copy or move of a catalogued file, or unreadable), or its bytes
    and hash, to be decoded."""
    try:
        data = read(task)
    except ImageError as error:  # the file could not be read: its permissions, or a worker's view of the disk
        return Prepared(task.found, error=str(error), error_kind="unreadable")
    digest = content_hash(data)
    reuse = None if task.fresh else lookup.find(digest)
    return Prepared(task.found, digest, reuse=reuse) if reuse is not None else (data, digest)


def make_preparer(preprocessing: Callable[[], Preprocessing], lookup: ContentLookup,
                  thumbnail: Callable[[FoundFile, DecodedImage], None] | None = None,
                  read: Callable[[Task], bytes] = read_task) -> Callable[[Task], Prepared]:
    """The function each worker runs on one file. `preprocessing` is asked only when a file must be decoded,
    so a run of moves and renames never loads the model, and a file that is not an image is refused first.
    `thumbnail`, when given, is handed each decoded picture (upright, at the reduced decode scale); `read`
    gives a file's bytes (by default from its path)."""

    def prepare(task: Task) -> Prepared:
        matched = match(task, lookup, read)
        if isinstance(matched, Prepared):
            return matched
        data, digest = matched
        try:
            check_image(data, task.max_megapixels)
            settings = preprocessing()
            # Region crops are 2 / (grid + 1) of the short side: decoded large enough that they are model-sized too.
            size = settings.image_size * (task.regions + 1) // 2 if task.regions else settings.image_size
            decoded = decode_image(data, target_size=size, max_megapixels=task.max_megapixels)
            pixels = prepare_pixels(decoded.image, settings.image_size, settings.resize_mode, settings.interpolation)
            if thumbnail is not None:
                thumbnail(task.found, decoded)
            info = decoded.info
            crops, boxes = region_crops(decoded, settings, task.regions) if task.regions else (None, ())
            return Prepared(task.found, digest, pixels, info.width, info.height, info.taken_at, info.camera_make,
                            info.camera_model, region_pixels=crops, region_boxes=boxes)
        except ImageTooLargeError as error:
            return Prepared(task.found, error=str(error), error_kind=limit_kind(error))
        except ImageError as error:
            return Prepared(task.found, error=str(error))
        except MemoryError:
            return Prepared(task.found, error="out of memory while decoding")

    return prepare


def region_crops(decoded: DecodedImage, settings: Preprocessing, grid: int,
                 ) -> tuple[np.ndarray, tuple[tuple[int, int, int, int], ...]]:
    """A grid x grid of overlapping square crops at the model's size, and their boxes in the upright original."""
    from clipsearch.indexing.regions import grid_boxes

    image, info = decoded.image, decoded.info
    boxes = grid_boxes(image.width, image.height, grid)
    scale_x, scale_y = info.width / image.width, info.height / image.height
    crops = np.stack([prepare_pixels(image.crop((x, y, x + w, y + h)), settings.image_size, settings.resize_mode,
                                     settings.interpolation) for x, y, w, h in boxes])
    originals = tuple((round(x * scale_x), round(y * scale_y), round(w * scale_x), round(h * scale_y))
                      for x, y, w, h in boxes)
    return crops, originals


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
