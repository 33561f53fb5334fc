"""Derived files: written atomically, and recognised later by a fingerprint of their contents.

Every cache beside the catalogue (the HNSW index, the query model, records of what was tried) is
written to a temporary name and renamed into place, so a reader sees the old file or the new one,
never half of one; and each is checked against its recorded fingerprint before it is trusted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

DIGEST_KIND = "xxh3-128"


def fingerprint(path: Path) -> tuple[int, str]:
    """Size and a hash of the whole file: any damage, anywhere, shows. xxh3 reads a memory-mapped file at
    memory speed, a small part of what loading it costs (bench/results/2026-12-01-hnsw-digest.txt)."""
    import mmap

    import xxhash

    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            return 0, f"{DIGEST_KIND}:{xxhash.xxh3_128_hexdigest(b'')}"
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return size, f"{DIGEST_KIND}:{xxhash.xxh3_128_hexdigest(mapped)}"


def content_hash(data: bytes) -> str:
    """The hash of a photo's bytes that the catalogue keeps: a copy or a moved file is recognised by it."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def temporary_name(path: Path) -> Path:
    """Where to write `path` before renaming it into place: unique to this process."""
    return path.with_name(f"{path.name}.tmp{os.getpid()}")


def remove_leftovers(path: Path) -> None:
    """Delete the temporary files of earlier writes of `path` that were killed before their rename."""
    for leftover in path.parent.glob(f"{path.name}.tmp*"):
        with contextlib.suppress(OSError):
            if leftover.is_dir():
                import shutil

                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink()


PRIVATE_FILE_MODE = 0o600


def create_private(path: Path) -> int:
    """Open a new file for writing, readable by its owner only, refusing to follow a symlink planted there."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0),
                   PRIVATE_FILE_MODE)


def write_atomically(path: Path, data: bytes) -> None:
    temporary = temporary_name(path)
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()  # left by a write of this same process that failed
    try:
        with os.fdopen(create_private(temporary), "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def write_json_atomically(path: Path, value: Any) -> None:
    write_atomically(path, json.dumps(value, sort_keys=True).encode())


def read_json(path: Path) -> Any | None:
    """A JSON file's value, or None if it is missing or not JSON (anyone can edit it)."""
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
