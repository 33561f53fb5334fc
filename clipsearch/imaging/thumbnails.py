"""Thumbnails: small upright JPEGs of photos, made from the same DCT-scaled decode as indexing, and kept in a
bounded cache in the database folder.

A thumbnail is named by a hash of the file's path, size and modification time, so a changed file
misses its old thumbnail (which ages out). The cache is a cache: missing or damaged entries are made
again. Its total size is capped (CLIPSEARCH_THUMBNAIL_CACHE_MB, default 1 GB); when a write takes it
over the cap, the least recently used entries go first (reading an entry marks it used).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from clipsearch.errors import env_number
from clipsearch.filesystem import create_private, remove_leftovers, temporary_name

if TYPE_CHECKING:  # Pillow is imported where pictures are made, so `status` can size the cache without it
    from PIL import Image

    from clipsearch.imaging.decode import DecodedImage

THUMBNAIL_SIZE = 320  # the longest side: sharp in a 256-pixel grid cell, a few hundred KB for 20 of them
JPEG_QUALITY = 82
CACHE_ENV = "CLIPSEARCH_THUMBNAIL_CACHE_MB"
DEFAULT_CACHE_MB = 1024
_PRUNE_TO = 0.9  # a prune leaves the cache at this share of its cap, so it does not prune on every write


def make_thumbnail(image: Image.Image, size: int = THUMBNAIL_SIZE) -> bytes:
    """An upright RGB picture as a JPEG whose longest side is `size` (never enlarged)."""
    from PIL import Image

    thumb = image.copy() if max(image.size) > size else image
    thumb.thumbnail((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    thumb.convert("RGB").save(buffer, "JPEG", quality=JPEG_QUALITY, optimize=False)
    return buffer.getvalue()


def thumbnail_of_file(path: str, size: int = THUMBNAIL_SIZE) -> bytes:
    """Decode a photo at the smallest DCT scale that still covers `size` and make its thumbnail."""
    from clipsearch.imaging.decode import decode_image, read_file

    return make_thumbnail(decode_image(read_file(path), target_size=size).image, size)


@dataclass(frozen=True)
class CacheStats:
    entries: int
    size_bytes: int
    cap_bytes: int


class ThumbnailCache:
    def __init__(self, folder: Path, cap_bytes: int | None = None) -> None:
        self.folder = folder
        if cap_bytes is None:
            cap_bytes = int(env_number(CACHE_ENV, DEFAULT_CACHE_MB, minimum=0) * 1e6)
        self.cap_bytes = max(0, cap_bytes)
        self._lock = threading.Lock()
        self._estimate: int | None = None  # bytes held, known after the first scan

    @staticmethod
    def key(path: str, size: int, mtime_ns: int) -> str:
        return hashlib.blake2b(f"{size}:{mtime_ns}:".encode() + os.fsencode(path), digest_size=16).hexdigest()

    def _entry(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.jpg"

    def get(self, key: str) -> bytes | None:
        entry = self._entry(key)
        try:
            data = entry.read_bytes()
        except OSError:
            return None
        if not data.startswith(b"\xff\xd8"):  # not a JPEG: damaged, made again
            with contextlib.suppress(OSError):
                entry.unlink()
            return None
        with contextlib.suppress(OSError):
            os.utime(entry)  # used now: the last to be pruned
        return data

    def put(self, key: str, data: bytes) -> None:
        if self.cap_bytes == 0:
            return
        entry = self._entry(key)
        try:
            entry.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            remove_leftovers(entry)
            temporary = temporary_name(entry)
            with os.fdopen(create_private(temporary), "wb") as handle:
                handle.write(data)
            os.replace(temporary, entry)
        except OSError:
            return  # a cache: a full disk or a read-only folder only costs speed
        with self._lock:
            if self._estimate is None:
                self._estimate = self.stats().size_bytes
            else:
                self._estimate += len(data)
            if self._estimate > self.cap_bytes:
                self._estimate = self._prune()

    def thumbnail(self, path: str, size: int, mtime_ns: int) -> bytes:
        """The cached thumbnail of a file, made (and cached) if it is missing."""
        key = self.key(path, size, mtime_ns)
        cached = self.get(key)
        if cached is not None:
            return cached
        data = thumbnail_of_file(path)
        self.put(key, data)
        return data

    def keep_decoded(self, path: str, size: int, mtime_ns: int, decoded: DecodedImage) -> None:
        """Cache the thumbnail of a photo decoded for another reason (indexing), unless it is cached already or
        the decode was scaled below the thumbnail's size (then it is made from the file when first asked)."""
        image, info = decoded.image, decoded.info
        if max(image.size) < THUMBNAIL_SIZE and image.size != (info.width, info.height):
            return
        key = self.key(path, size, mtime_ns)
        if not self._entry(key).exists():
            self.put(key, make_thumbnail(image))

    def _entries(self) -> list[tuple[float, int, Path]]:
        found = []
        for entry in self.folder.glob("??/*.jpg"):
            with contextlib.suppress(OSError):
                info = entry.stat()
                found.append((info.st_mtime, info.st_size, entry))
        return found

    def stats(self) -> CacheStats:
        entries = self._entries()
        return CacheStats(len(entries), sum(size for _, size, _ in entries), self.cap_bytes)

    def _prune(self) -> int:
        """Drop the least recently used entries until the cache is well under its cap; returns its size."""
        entries = sorted(self._entries())
        total = sum(size for _, size, _ in entries)
        for _, size, entry in entries:
            if total <= self.cap_bytes * _PRUNE_TO:
                break
            with contextlib.suppress(OSError):
                entry.unlink()
                total -= size
        return total
