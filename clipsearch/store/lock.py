"""One writer per database: an advisory lock on `writer.lock` that the OS releases when its process dies."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator

from clipsearch.config import DataDir
from clipsearch.errors import CatalogError, LockedError


@contextlib.contextmanager
def writer_lock(data_dir: DataDir, wait: bool, on_wait: Callable[[str], None] = lambda message: None,
                ) -> Iterator[None]:
    """Hold the database's writer lock for the block; wait for another writer (saying so), or fail at once."""
    try:
        data_dir.root.mkdir(parents=True, exist_ok=True)
        handle = open(data_dir.lock, "a+")  # noqa: SIM115 (held for the whole block)
    except OSError as error:
        raise CatalogError(f"cannot write to {data_dir.root}: {error.strerror or error}") from error
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            if not wait:
                raise LockedError(f"{data_dir.root} is being written by {holder}; try again when it finishes, "
                                  "or leave out --no-wait to wait for it") from None
            on_wait(f"waiting for {holder} to finish writing {data_dir.root} (--no-wait to fail instead)")
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(f"clipsearch pid {os.getpid()}")
        handle.flush()
        yield
    finally:
        handle.close()
