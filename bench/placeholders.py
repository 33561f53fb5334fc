"""Create an empty file at every path a synthetic catalogue holds, so that its search results count as present.

    python bench/placeholders.py /tmp/cat1m

Since 0.2, `query` and `similar` leave out results whose file no longer exists (and look further), so a
catalogue of fake paths answers nothing; with these placeholders it answers as a real library would, and
each query pays for the existence checks of its results as a real one does. bench/synthetic_catalog.py
makes them as it writes the catalogue (unless --no-placeholders); this script makes them for a catalogue
written before. Existing files are left alone.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
from collections.abc import Iterable
from pathlib import Path


def make_placeholders(paths: Iterable[str]) -> int:
    """Empty files at these paths, with their folders; returns how many were made."""
    made_folders: set[str] = set()
    made = 0
    for path in paths:
        folder = os.path.dirname(path)
        if folder not in made_folders:
            os.makedirs(folder, exist_ok=True)
            made_folders.add(folder)
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            made += 1
        except FileExistsError:
            pass
    return made


def catalogue_paths(db: Path) -> Iterable[str]:
    connection = sqlite3.connect(f"file:{db / 'catalog.db'}?mode=ro", uri=True)
    try:
        for (path,) in connection.execute("SELECT path FROM files"):
            yield os.fsdecode(path) if isinstance(path, bytes) else path
    finally:
        connection.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("db", type=Path, metavar="DB_DIR")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    made = make_placeholders(catalogue_paths(args.db))
    print(f"made {made:,} placeholder files in {time.perf_counter() - began:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
