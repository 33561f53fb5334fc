"""One entry point for a search: a running `clipsearch serve` answers when it may, else this process does."""

from __future__ import annotations

import os

from clipsearch.config import NO_SERVER_ENV_VAR, DataDir
from clipsearch.models.device import Device, Precision
from clipsearch.search.request import QueryKind, QueryOptions
from clipsearch.search.results import SearchAnswer


def run_search(data_dir: DataDir, kind: QueryKind, queries: list[str], options: QueryOptions, *,
               model: str | None = None, pretrained: str | None = None, device: Device = Device.auto,
               precision: Precision = Precision.auto) -> SearchAnswer:
    """Search the database; the answer is the same whichever process gives it.

    The server holds the database's own model on its own device, so asking for another model, device or
    precision (or setting CLIPSEARCH_NO_SERVER) searches in this process.
    """
    defaults = (model, pretrained, Device(device), Precision(precision)) == (None, None, Device.auto, Precision.auto)
    if defaults and not os.environ.get(NO_SERVER_ENV_VAR):
        from clipsearch.search.client import ask

        results = ask(data_dir, kind, queries, options)
        if results is not None:
            return results
    from clipsearch.search.searcher import Searcher

    searcher = Searcher(data_dir, model, pretrained, device, precision)
    try:
        return searcher.search(kind, queries, options)
    finally:
        searcher.close()
