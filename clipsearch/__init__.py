"""clipsearch: local semantic photo search. `from clipsearch import Library` is the Python API (docs/api.md).

Importing the package is free: each public name is imported on first use, and nothing heavy (torch, a model,
an index) loads before a method needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

# name -> the module that defines it
_PUBLIC = {
    "Library": "clipsearch.library.api",
    "Results": "clipsearch.library.api",
    "Result": "clipsearch.search.results",
    "ModelChoice": "clipsearch.models.identity",
    "Status": "clipsearch.search.status",
    "IndexStats": "clipsearch.indexing.request",
    "Reporter": "clipsearch.indexing.request",
    "Classification": "clipsearch.insight.classify",
    "Located": "clipsearch.insight.locate",
    "DuplicateGroup": "clipsearch.insight.duplicates",
    "ClipsearchError": "clipsearch.errors",
    "UsageError": "clipsearch.errors",
}

if TYPE_CHECKING:
    from clipsearch.errors import ClipsearchError, UsageError
    from clipsearch.indexing.request import IndexStats, Reporter
    from clipsearch.insight.classify import Classification
    from clipsearch.insight.duplicates import DuplicateGroup
    from clipsearch.insight.locate import Located
    from clipsearch.library.api import Library, Results
    from clipsearch.models.identity import ModelChoice
    from clipsearch.search.results import Result
    from clipsearch.search.status import Status

__all__ = [
    "Classification",
    "ClipsearchError",
    "DuplicateGroup",
    "IndexStats",
    "Library",
    "Located",
    "ModelChoice",
    "Reporter",
    "Result",
    "Results",
    "Status",
    "UsageError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        import importlib

        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'clipsearch' has no attribute {name!r}")
