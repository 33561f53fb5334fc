"""One writer per database: an advisory lock on `writer.lock` that the OS releases when its process dies."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
from collections.abc import Iterator

from clipsearch.config import DataDir
from clipsearch.errors import CatalogError, LockedError, describe_os_error
from clipsearch.filesystem import PRIVATE_FILE_MODE
from clipsearch.store.folder import create_database_folder

log = logging.getLogger(__name__)


@contextlib.contextmanager
def writer_lock(data_dir: DataDir, wait: bool) -> Iterator[None]:
    """Hold the database's writer lock for the block; wait for another writer (saying so), or fail at once."""
    create_database_folder(data_dir.root)
    try:
        # Never through a symlink: in a folder someone else could write to, one could point at the user's files.
        descriptor = os.open(data_dir.lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0),
                             PRIVATE_FILE_MODE)
        handle = os.fdopen(descriptor, "r+")
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise CatalogError(f"{data_dir.lock} is a symbolic link, which clipsearch never writes through: "
                               "remove it") from error
        raise CatalogError(f"cannot write to {data_dir.root}: {describe_os_error(error)}") from error
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            if not wait:
                raise LockedError(f"{data_dir.root} is being written by {holder}; try again when it finishes, "
                                  "or leave out --no-wait to wait for it") from None
            log.info(f"waiting for {holder} to finish writing {data_dir.root} (--no-wait to fail instead)")
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(f"clipsearch pid {os.getpid()}")
        handle.flush()
        yield
    finally:
        handle.close()


def current_writer(data_dir: DataDir) -> str | None:
    """Who holds the writer lock now ("clipsearch pid N"), or None; creates nothing."""
    try:
        descriptor = os.open(data_dir.lock, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    with os.fdopen(descriptor, "r") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return handle.read().strip() or "another process"
        except OSError:
            return None
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None
