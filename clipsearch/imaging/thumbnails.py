"""Thumbnails: small upright JPEGs of photos, made from the same DCT-scaled decode as indexing, and kept in a
bounded cache in the database folder.

A thumbnail is named by a hash of the file's path, size and modification time, so a changed file
misses its old thumbnail (which ages out). The cache is a cache: missing or damaged entries are made
again. Its total size is capped (CLIPSEARCH_THUMBNAIL_CACHE_MB, default 1 GB); when a write takes it
over the cap, the least recently used entries go first (reading an entry marks it used).

A photo is read for someone else (the web page, a thumbnail) only while it is still the file the catalogue
holds: `open_catalogued` refuses a path that is now a symbolic link or leads through one, anything but a
regular file, and a file whose size or modification time differ from the catalogue's. A cache entry is read
only when it is a regular file in a real folder of the cache, never through a link planted there.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import stat
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


class NotCataloguedError(OSError):
    """The file at a catalogued path is no longer the one the catalogue holds (or is gone): not read."""

    def __init__(self, why: str, changed: bool = False) -> None:
        super().__init__(why)
        self.why = why
        self.changed = changed  # the same regular file, changed since it was indexed (else gone or replaced)

    def __str__(self) -> str:
        return self.why


_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def open_catalogued(path: str, size: int | None, mtime_ns: int | None) -> int:
    """An open descriptor of the photo at a catalogued path, only while it is still that photo: the path is its
    own real path (no symbolic link anywhere in it: catalogued paths are real ones), the last component is not
    followed (O_NOFOLLOW), and the open file is a regular file of the catalogued size and modification time.
    Raises NotCataloguedError otherwise."""
    try:
        if os.path.realpath(path) != path:
            raise NotCataloguedError("a symbolic link now stands where the photo was")
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise NotCataloguedError("the file is no longer there") from None
    except (OSError, ValueError) as error:
        if isinstance(error, NotCataloguedError):
            raise
        raise NotCataloguedError(f"the file cannot be opened: {getattr(error, 'strerror', None) or error}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotCataloguedError("not a regular file any more")
        if size is None or mtime_ns is None or (info.st_size, info.st_mtime_ns) != (size, mtime_ns):
            raise NotCataloguedError("the file has changed since it was indexed (`clipsearch index` catches up)",
                                     changed=True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_catalogued(path: str, size: int | None, mtime_ns: int | None) -> bytes:
    """The whole photo at a catalogued path, while it is still that photo (see open_catalogued)."""
    with os.fdopen(open_catalogued(path, size, mtime_ns), "rb") as handle:
        return handle.read()


def thumbnail_of_file(path: str, size: int = THUMBNAIL_SIZE, *, catalogued: tuple[int, int] | None = None) -> bytes:
    """Decode a photo at the smallest DCT scale that still covers `size` and make its thumbnail. With
    `catalogued` (size, mtime_ns), only the file the catalogue holds is read (see open_catalogued)."""
    from clipsearch.imaging.decode import decode_image, read_file

    data = read_file(path) if catalogued is None else read_catalogued(path, *catalogued)
    return make_thumbnail(decode_image(data, target_size=size).image, size)


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
            data = self._read_entry(entry)
        except OSError:
            return None
        if not data.startswith(b"\xff\xd8"):  # not a JPEG: damaged, made again
            with contextlib.suppress(OSError):
                entry.unlink()
            return None
        with contextlib.suppress(OSError):
            os.utime(entry)  # used now: the last to be pruned
        return data

    @staticmethod
    def _read_entry(entry: Path) -> bytes:
        """An entry's bytes, only from a regular file in a real subfolder: a link planted in the cache (for the
        entry or its subfolder) is neither followed nor served."""
        folder = os.open(entry.parent, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_NOFOLLOW", 0))
        try:
            fd = os.open(entry.name, _OPEN_FLAGS, dir_fd=folder)
        finally:
            os.close(folder)
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise OSError(f"{entry} is not a regular file")
            return handle.read()

    def put(self, key: str, data: bytes) -> None:
        if self.cap_bytes == 0:
            return
        entry = self._entry(key)
        try:
            entry.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if entry.parent.is_symlink():  # planted: nothing is written through it
                return
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
        """The cached thumbnail of a file of this size and modification time, made (and cached) if it is missing.
        Only that file is read: a path that is now a link, or a file changed since, raises NotCataloguedError."""
        key = self.key(path, size, mtime_ns)
        cached = self.get(key)
        if cached is not None:
            return cached
        data = thumbnail_of_file(path, catalogued=(size, mtime_ns))
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
