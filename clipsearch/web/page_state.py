"""What the page asks of the database, answered by the server's one LocalLibrary (shared with the commands that
ask the server): searches, the photo behind a catalogue id, the facets for the filters, and pictures dropped on
the page.

Nothing here writes to the catalogue. A dropped picture is held in memory only, as its vector and a
thumbnail, so that its results have an address (`/?picture=KEY`) that back, reload and links can use.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from clipsearch.config import DataDir
from clipsearch.errors import ImageError, UsageError
from clipsearch.filesystem import content_hash
from clipsearch.imaging.thumbnails import THUMBNAIL_SIZE, ThumbnailCache, open_catalogued
from clipsearch.library.local import LocalLibrary
from clipsearch.search.request import QueryKind, QueryOptions
from clipsearch.search.results import SearchAnswer, camera_name
from clipsearch.store.rows import FileRecord

PICTURES_HELD = 32  # dropped pictures kept for back and reload; older ones must be dropped again
FACETS_TTL_S = 60.0
MAX_ROW_ID = (1 << 63) - 1  # SQLite's largest integer


@dataclass(frozen=True)
class Picture:
    vector: np.ndarray
    thumbnail: bytes
    name: str


@dataclass(frozen=True)
class Facets:
    roots: list[str]
    cameras: list[str]
    tags: list[tuple[str, int]]


class PageState:
    def __init__(self, library: LocalLibrary, data_dir: DataDir) -> None:
        self.library = library
        self.thumbnails = ThumbnailCache(data_dir.thumbnails)
        self._pictures: OrderedDict[str, Picture] = OrderedDict()
        self._pictures_lock = threading.Lock()
        self._facets: tuple[int, float, Facets] | None = None

    def search_text(self, text: str, options: QueryOptions) -> SearchAnswer:
        return self.library.search(QueryKind.text, [text], options)

    def search_like_row(self, row_id: int, options: QueryOptions) -> SearchAnswer:
        if not 0 < row_id <= MAX_ROW_ID:
            raise UsageError(f"no photo has id {row_id} in this database")
        return self.library.like_row(row_id, options)

    def search_like_picture(self, key: str, options: QueryOptions) -> SearchAnswer:
        picture = self.picture(key)
        if picture is None:
            raise UsageError("this server no longer holds that picture (it was restarted, or many were dropped "
                             "since): drop it again")
        return self.library.like_vector(picture.vector, picture.name, options)

    def record(self, row_id: int) -> FileRecord | None:
        """The catalogued photo with this id, if there is one: the only way the page names a file."""
        if not 0 < row_id <= MAX_ROW_ID:  # no such row, and SQLite cannot even be asked
            return None
        with self.library.searcher(catch_up=False) as searcher:
            return searcher.catalog.files.records([row_id]).get(row_id)

    def thumbnail(self, record: FileRecord) -> tuple[bytes, str] | None:
        """A catalogued photo's thumbnail and its cache key (an ETag), or None when it cannot be read or is no
        longer the catalogued file (a link put in its place, changed since: see open_catalogued)."""
        if record.size is None or record.mtime_ns is None:
            return None
        try:
            os.close(open_catalogued(record.path, record.size, record.mtime_ns))
            key = self.thumbnails.key(record.path, record.size, record.mtime_ns)
            return self.thumbnails.thumbnail(record.path, record.size, record.mtime_ns), key
        except (OSError, ImageError):
            return None

    @staticmethod
    def file_size(record: FileRecord) -> int | None:
        """The photo's size while it is still the catalogued file, else None (shown as gone)."""
        try:
            os.close(open_catalogued(record.path, record.size, record.mtime_ns))
        except OSError:
            return None
        return record.size

    def add_picture(self, data: bytes, name: str) -> str:
        """Embed a dropped picture and hold it; its key names its results. Raises UsageError for a picture that
        cannot be used, with the reason."""
        from clipsearch.imaging.decode import check_image
        from clipsearch.imaging.isolated import thumbnail_bytes

        try:  # anyone with the page can send these bytes: decoded in a child process (as its vector is), never here
            check_image(data)
            preview = thumbnail_bytes(data, THUMBNAIL_SIZE)
        except ImageError as error:
            raise UsageError(f"{name}: {error}") from error
        vector = self.library.picture_vector(data, name)
        key = content_hash(data)[:20]
        with self._pictures_lock:
            self._pictures[key] = Picture(vector, preview, name)
            self._pictures.move_to_end(key)
            while len(self._pictures) > PICTURES_HELD:
                self._pictures.popitem(last=False)
        return key

    def picture(self, key: str) -> Picture | None:
        with self._pictures_lock:
            return self._pictures.get(key)

    def facets(self) -> Facets:
        """The roots, cameras and tags the filters offer, worked out again when files change, and every minute
        (`clipsearch tag` changes tags, not files)."""
        with self.library.searcher(catch_up=False) as searcher:
            catalog = searcher.catalog
            seq = catalog.current_seq()
            if self._facets is not None and self._facets[0] == seq and time.monotonic() < self._facets[1]:
                return self._facets[2]
            cameras = [camera_name(make, model) for make, model, _ in catalog.files.cameras()]
            facets = Facets([root.path for root in catalog.roots.all()], [c for c in dict.fromkeys(cameras) if c],
                            catalog.tags.counts())
        self._facets = (seq, time.monotonic() + FACETS_TTL_S, facets)
        return facets
