"""The database folder: created for its user alone, and refused for writing when anyone else could tamper with it.

A database holds what a user's photos show, so its folder is created 0700 and its files 0600. An
existing folder keeps its mode (`status` warns when others can read it), but clipsearch will not write
into one that another user owns or can write to: a planted symlink there could make it overwrite the
victim's files.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from clipsearch.errors import CatalogError, describe_os_error

PRIVATE_FOLDER_MODE = 0o700


def create_database_folder(root: Path) -> None:
    """Make sure `root` exists, created for this user alone, and is safe to write into."""
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        root.mkdir(mode=PRIVATE_FOLDER_MODE)
    except FileExistsError:
        pass
    except OSError as error:
        raise CatalogError(f"cannot create the database folder {root}: {describe_os_error(error)}") from error
    check_writable_folder(root)


def check_writable_folder(root: Path) -> None:
    """Refuse a database folder that another user owns or can write to."""
    try:
        info = os.stat(root)
    except OSError as error:
        raise CatalogError(f"cannot use the database folder {root}: {describe_os_error(error)}") from error
    if not stat.S_ISDIR(info.st_mode):
        raise CatalogError(f"{root} is not a folder: pass --db a folder (the database is the whole folder)")
    if info.st_uid != os.getuid():
        raise CatalogError(f"the database folder {root} belongs to another user: use a folder of your own")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise CatalogError(f"other users can write to the database folder {root}: make it yours alone "
                           f"(chmod 700 {root}) or use another --db")


def readable_by_others(root: Path) -> bool:
    try:
        return bool(os.stat(root).st_mode & (stat.S_IRWXG | stat.S_IRWXO))
    except OSError:
        return False
