"""Remove files and whole folders from a database; the files themselves are never touched."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from clipsearch.config import DataDir
from clipsearch.errors import CatalogError
from clipsearch.models.identity import recorded_model
from clipsearch.store.catalog import Catalog
from clipsearch.store.hnsw import VectorIndex
from clipsearch.store.lock import writer_lock


@dataclass(frozen=True)
class Forgotten:
    files: int
    roots: int  # indexed folders forgotten (a folder that no longer exists may hold no files)


def forget_paths(data_dir: DataDir, paths: Sequence[str], wait: bool = True) -> Forgotten:
    """Remove files and folders from the catalogue, its failures, a switch's staged work, and the index."""
    if not data_dir.catalog.exists():  # before the lock, which would create the folder
        raise CatalogError(f"no catalogue at {data_dir.catalog}: nothing is indexed there (check --db)")
    with writer_lock(data_dir, wait):
        catalog = Catalog(data_dir.catalog)
        try:
            with catalog.transaction():
                files = catalog.files.remove_under(list(paths), catalog.next_seq())
                roots = catalog.roots.forget_under(list(paths))
                catalog.failures.forget_under(list(paths))
                catalog.staging.unstage_under(list(paths))
            identity = recorded_model(catalog)
            if files and identity is not None:
                index, _ = VectorIndex.open(data_dir, catalog, identity.dim)
                index.persist(catalog, data_dir)
        finally:
            catalog.close()
    return Forgotten(files, roots)
