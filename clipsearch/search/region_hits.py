"""Searching the region vectors of `index --regions`: a photo matches by its best region or by its whole.

A text query is searched in both indexes; each photo keeps the better of its whole-image score and its best
region's, and when the region wins, the result names it (its box, as `--where` would give).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from clipsearch.search.candidates import EXACT_SEARCH_LIMIT, Candidates, exact_nearest
from clipsearch.store.catalog import Catalog
from clipsearch.store.hnsw import Hit, VectorIndex

REGIONS_PER_RESULT = 4  # region hits asked for per result wanted: a photo's several regions often all match


def nearest_regions(catalog: Catalog, index: Callable[[], VectorIndex], vector: np.ndarray, candidates: Candidates,
                    k: int) -> list[Hit]:
    """The k region vectors nearest to `vector` among the candidate photos' regions (region ids)."""
    if candidates.everything:
        return index().search(vector, k)
    files = (candidates.ids.tolist() if candidates.ids is not None
             else [int(i) for folder in candidates.folders for i in catalog.files.ids_under(folder)])
    if len(files) <= EXACT_SEARCH_LIMIT:
        return exact_nearest(catalog.regions.vectors_of_files(files), vector, k)
    allowed = {int(i) for ids, _ in catalog.regions.vectors_of_files(files) for i in ids}
    return index().search(vector, k, allowed=allowed)


def merged(catalog: Catalog, hits: list[Hit], region_hits: list[Hit]) -> tuple[list[Hit], dict[int, list[int]]]:
    """The photos by the better of their own score and their best region's, best first; and the winning regions'
    boxes, by photo id."""
    scores = {hit.id: hit.score for hit in hits}
    boxes: dict[int, list[int]] = {}
    records = catalog.regions.records([hit.id for hit in region_hits])
    for hit in region_hits:
        record = records.get(hit.id)
        if record is not None and hit.score > scores.get(record.file_id, -np.inf):
            scores[record.file_id] = hit.score
            boxes[record.file_id] = list(record.box)
    ordered = sorted(scores.items(), key=lambda item: -item[1])
    return [Hit(file_id, score) for file_id, score in ordered], boxes
