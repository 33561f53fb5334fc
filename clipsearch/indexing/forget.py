"""Remove files and whole folders from a database; the files themselves are never touched."""

from __future__ import annotations

from collections.abc import Sequence

from clipsearch.config import DataDir
from clipsearch.indexing.progress import Reporter
from clipsearch.models.identity import MODEL_SETTING, ModelIdentity
from clipsearch.store.catalog import Catalog
from clipsearch.store.hnsw import VectorIndex
from clipsearch.store.lock import writer_lock


def forget_paths(data_dir: DataDir, paths: Sequence[str], wait: bool = True, reporter: Reporter | None = None) -> int:
    """Remove files and folders from the catalogue and the index; returns how many files went."""
    reporter = reporter or Reporter()
    with writer_lock(data_dir, wait, reporter.message):
        catalog = Catalog(data_dir.catalog)
        try:
            with catalog.transaction():
                removed = catalog.remove_under(list(paths), catalog.next_seq())
            identity = ModelIdentity.from_dict(catalog.get_json(MODEL_SETTING) or {})
            if removed and identity.dim:
                index, _ = VectorIndex.open(data_dir, catalog, identity.dim)
                index.persist(catalog, data_dir)
        finally:
            catalog.close()
    return removed
