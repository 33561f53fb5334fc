"""`Library`: one clipsearch database, the product every other layer sits on.

The CLI, the web page, the resident server and the benches all go through it. Its questions (search, similar,
classify, locate, duplicates) are answered by the database's resident server when one runs and the library uses
the database's own model; otherwise in this process, by a LocalLibrary that keeps the model and the index loaded
while the Library is open. Nothing heavy is imported until a method needs it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clipsearch.config import NO_SERVER_ENV_VAR, DataDir, resolve_data_dir
from clipsearch.errors import UsageError
from clipsearch.models.device import Device, Engine, Precision
from clipsearch.models.identity import ModelChoice
from clipsearch.search.request import QueryKind, QueryOptions, SortKey, query_options
from clipsearch.search.results import Result, SearchAnswer

if TYPE_CHECKING:
    from clipsearch.indexing.forget import Forgotten
    from clipsearch.indexing.request import IndexStats, Reporter
    from clipsearch.insight.classify import Classification
    from clipsearch.insight.duplicates import DuplicateGroup
    from clipsearch.insight.locate import Located
    from clipsearch.insight.tagging import TagReport
    from clipsearch.library.local import LocalLibrary
    from clipsearch.search.status import Status
    from clipsearch.store.tags import TaggedFile

PathArg = str | PathLike[str]


class Results(list[Result]):
    """A search's results, best first, and how many were left out because their file no longer exists."""

    def __init__(self, results: Sequence[Result] = (), missing: int = 0) -> None:
        super().__init__(results)
        self.missing = missing


def _paths(value: PathArg | Sequence[PathArg], what: str) -> list[str]:
    items = [value] if isinstance(value, str | PathLike) else list(value)
    paths = [os.fspath(item) for item in items]
    if not paths:
        raise UsageError(f"no {what} given")
    for path in paths:
        if not path:
            raise UsageError(f"an empty path is not {what}: name one")
    return paths


class Library:
    """A clipsearch database folder (default: the one the CLI uses), for indexing and searching.

    >>> with Library("~/.local/share/clipsearch") as photos:        # doctest: +SKIP
    ...     photos.index(["~/Pictures"])
    ...     for result in photos.search("sunset on the beach", limit=5, after="2023"):
    ...         print(result.score, result.path)

    `model`, `pretrained`, `device` and `precision` choose what answers queries; left out, the database's own
    model does, and a running `clipsearch serve` or `clipsearch web` for the same database answers for it
    (`use_server=False`, or CLIPSEARCH_NO_SERVER=1, answers in this process always).
    """

    def __init__(self, db: PathArg | None = None, *, model: str | None = None, pretrained: str | None = None,
                 device: Device | str = Device.auto, precision: Precision | str = Precision.auto,
                 use_server: bool = True) -> None:
        if db is not None and not os.fspath(db):
            raise UsageError("the database folder is an empty path: name a folder")
        self.data_dir: DataDir = resolve_data_dir(Path(os.fspath(db)) if db is not None else None)
        try:
            self.choice = ModelChoice(model, pretrained, Device(device), Precision(precision))
        except ValueError as error:
            raise UsageError(str(error)) from None
        self._use_server = use_server
        self._local: LocalLibrary | None = None

    @property
    def path(self) -> Path:
        """The database folder."""
        return self.data_dir.root

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Library({str(self.path)!r})"

    def close(self) -> None:
        """Let go of the model, the index and the catalogue (the Library can be used again: it reopens them)."""
        if self._local is not None:
            self._local.close()
            self._local = None

    # --- answered by the server when it runs ------------------------------------------------------------------

    @property
    def local(self) -> LocalLibrary:
        """The in-process answerer, made on first use."""
        if self._local is None:
            from clipsearch.library.local import LocalLibrary

            self._local = LocalLibrary(self.data_dir, self.choice)
        return self._local

    def _ask(self, route: str, request: dict[str, Any], decode: Callable[[dict[str, Any]], Any]) -> Any | None:
        """The server's decoded answer, or None: no server, another model asked for, or an answer not understood."""
        if not self._use_server or not self.choice.is_default or os.environ.get(NO_SERVER_ENV_VAR):
            return None
        from clipsearch.library import remote
        from clipsearch.library.wire import WireError

        answer = remote.call(self.data_dir, route, request)
        if answer is None:
            return None
        try:
            return decode(answer)
        except WireError:
            return None

    def answer(self, kind: QueryKind, queries: Sequence[str], options: QueryOptions, *,
               where: bool = False) -> SearchAnswer:
        """The results of text or image queries with options already built: what `search` and `similar` do."""
        from clipsearch.library.wire import SearchRequest, answer_from_json

        queries = list(queries)
        if not queries:
            return SearchAnswer([])
        # The server has another working directory: it is sent paths it can open, and the user's own are shown.
        sent = [os.path.abspath(q) if kind is QueryKind.image and q else q for q in queries]
        terms = tuple(replace(t, value=os.path.abspath(t.value)) if t.kind is QueryKind.image and t.value else t
                      for t in options.terms)
        sent_options = replace(options, within=tuple(os.path.abspath(w) for w in options.within), terms=terms)
        request = SearchRequest(kind, sent, sent_options, where).to_json()
        served = self._ask("/v1/search", request, answer_from_json)
        if served is None:
            return self.local.search(kind, queries, options, where)
        shown = dict(zip(sent, queries))
        return SearchAnswer([replace(r, query=shown.get(r.query, r.query)) if r.query else r
                             for r in served.results], served.missing)

    def search(self, text: str | Sequence[str], *, limit: int = 10, min_score: float | None = None,
               within: Sequence[PathArg] = (), after: str | None = None, before: str | None = None,
               undated: bool = False, camera: str | None = None, tags: Sequence[str] = (),
               no_tags: Sequence[str] = (), sort: SortKey | str = SortKey.score, also: Sequence[str] = (),
               without: Sequence[str] = (), like: Sequence[PathArg] = (), where: bool = False) -> Results:
        """Photos that match a description (or each of several: every result names its `query`).

        Filters: `within` folders, `after`/`before` a date (2023, 2023-06 or 2023-06-14; `undated` keeps photos
        without one), `camera` (make or model contains), `tags` all held, `no_tags` none held. A combined query
        adds `also` texts, subtracts `without` texts and adds `like` images, each TEXT[:WEIGHT]. `where` gives each
        result the `box` where the text fits best.
        """
        queries = [text] if isinstance(text, str) else list(text)
        if not queries or not all(q.strip() for q in queries):
            raise UsageError("an empty query: say what to look for")
        options = query_options(limit=limit, min_score=min_score, within=within, after=after, before=before,
                                undated=undated, camera=camera, tags=tags, no_tags=no_tags, sort=sort, also=also,
                                without=without, like=like)
        answer = self.answer(QueryKind.text, queries, options, where=where)
        return Results(answer.results, answer.missing)

    def similar(self, image: PathArg | Sequence[PathArg], *, limit: int = 10, min_score: float | None = None,
                include_self: bool = False, within: Sequence[PathArg] = (), after: str | None = None,
                before: str | None = None, undated: bool = False, camera: str | None = None,
                tags: Sequence[str] = (), no_tags: Sequence[str] = (), sort: SortKey | str = SortKey.score,
                also: Sequence[str] = (), without: Sequence[str] = ()) -> Results:
        """Photos that look like an image file (indexed or not), or like each of several; filters as `search`."""
        options = query_options(limit=limit, min_score=min_score, within=within, include_self=include_self,
                                after=after, before=before, undated=undated, camera=camera, tags=tags,
                                no_tags=no_tags, sort=sort, also=also, without=without)
        answer = self.answer(QueryKind.image, _paths(image, "an image"), options)
        return Results(answer.results, answer.missing)

    def classify(self, images: PathArg | Sequence[PathArg], labels: Sequence[str], *,
                 templates: Sequence[str] = (), top: int = 5) -> list[Classification]:
        """Each image's `top` labels by zero-shot probability. A folder stands for every indexed photo under it."""
        from clipsearch.library.wire import classifications_from_json

        if isinstance(labels, str):
            raise UsageError("labels takes a list of strings, not one string")
        paths = _paths(images, "an image")
        sent = [os.path.abspath(p) for p in paths]
        request = {"images": sent, "labels": list(labels), "templates": list(templates), "top": top}
        served = self._ask("/v1/classify", request, classifications_from_json)
        if served is None:
            return self.local.classify(paths, labels, templates, top)
        shown = dict(zip(sent, paths))
        return [replace(c, path=shown.get(c.path, c.path)) for c in served]

    def locate(self, text: str, images: PathArg | Sequence[PathArg], *, top: int = 3,
               skipped: Callable[[str, str], None] = lambda path, reason: None) -> list[Located]:
        """The best `top` boxes for `text` in each image; an image that cannot be used goes to `skipped`."""
        from clipsearch.library.wire import located_from_json

        paths = _paths(images, "an image")
        sent = [os.path.abspath(p) for p in paths]
        served = self._ask("/v1/locate", {"text": text, "images": sent, "top": top}, located_from_json)
        if served is None:
            return self.local.locate(text, paths, top, skipped)
        shown = dict(zip(sent, paths))
        found, passed_over = served
        for path, reason in passed_over:
            skipped(shown.get(path, path), reason)
        return [replace(f, path=shown.get(f.path, f.path)) for f in found]

    def duplicates(self, *, within: Sequence[PathArg] = (), include_similar: bool = False,
                   threshold: float | None = None) -> list[DuplicateGroup]:
        """Groups of copies and versions of one picture (`kind` "exact" or "near"; "similar" with
        `include_similar`: shots of one moment), largest first, the photo to keep first in each."""
        from clipsearch.library.wire import duplicates_from_json

        folders = [os.path.abspath(os.fspath(w)) for w in within]
        request = {"within": folders, "include_similar": include_similar, "threshold": threshold}
        served = self._ask("/v1/duplicates", request, duplicates_from_json)
        return (served if served is not None else self.local.duplicates(folders, include_similar, threshold))[0]

    # --- always in this process -------------------------------------------------------------------------------

    def index(self, paths: Sequence[PathArg] = (), *, model: str | None = None, pretrained: str | None = None,
              device: Device | str = Device.auto, precision: Precision | str = Precision.auto,
              engine: Engine | str = Engine.auto, reindex: bool = False, regions: bool | None = None,
              thumbnails: bool = False, exclude: Sequence[str] | None = None, include_hidden: bool | None = None,
              follow_symlinks: bool | None = None, max_megapixels: float | None = None,
              batch_size: int | None = None, workers: int | None = None, wait: bool = True,
              reporter: Reporter | None = None, **advanced: Any) -> IndexStats:
        """Index folders (or single images); none: every folder indexed before. Incremental and resumable.

        Crawl options (`exclude`, `include_hidden`, `follow_symlinks`, `max_megapixels`) are remembered per folder.
        `reporter` hears progress; `advanced` takes the rest of clipsearch.indexing.request.IndexOptions. What the
        run has to say goes to the `logging` logger "clipsearch" (INFO), as it does for `forget` and `tag`.
        """
        from clipsearch.indexing.pipeline import index_paths
        from clipsearch.indexing.request import IndexOptions
        from clipsearch.indexing.roots import OptionChanges

        if isinstance(paths, str | PathLike):
            paths = [paths]
        roots = tuple(os.fspath(p) for p in paths)
        if any(not root for root in roots):
            raise UsageError("an empty path is not a folder: name one (an unset shell variable?)")
        changes = advanced.pop("changes", None) or OptionChanges(
            include_hidden=include_hidden, follow_symlinks=follow_symlinks,
            excludes=tuple(exclude) if exclude is not None else None, max_megapixels=max_megapixels)
        options = IndexOptions(roots=roots, changes=changes, model=model, pretrained=pretrained, reindex=reindex,
                               device=Device(device), precision=Precision(precision), engine=Engine(engine),
                               batch_size=batch_size, workers=workers, wait_for_lock=wait, thumbnails=thumbnails,
                               regions=regions, **advanced)
        self.close()  # indexing loads its own model: the query model's memory goes back first
        return index_paths(self.data_dir, options, reporter)

    def forget(self, paths: PathArg | Sequence[PathArg], *, wait: bool = True) -> Forgotten:
        """Remove files and whole folders from the database (the files themselves are never touched)."""
        from clipsearch.indexing.forget import forget_paths

        targets = [os.path.realpath(p) for p in _paths(paths, "a file or folder")]
        return forget_paths(self.data_dir, targets, wait=wait)

    def tag(self, vocabulary: PathArg | None = None, *, min_probability: float | None = None,
            wait: bool = True) -> TagReport:
        """Tag every photo from a vocabulary file (default: the built-in one); later `index` runs tag new photos."""
        from clipsearch.insight.tagging import check_rule
        from clipsearch.insight.vocabulary import BUILT_IN, read_vocabulary
        from clipsearch.models.zero_shot import TagRule
        from clipsearch.store.lock import writer_lock

        words = read_vocabulary(Path(os.fspath(vocabulary))) if vocabulary is not None else BUILT_IN
        rule = TagRule() if min_probability is None else TagRule(min_probability=min_probability)
        check_rule(rule)
        self._require_catalog()
        with writer_lock(self.data_dir, wait):
            return self.local.tag(words, rule)

    def tags(self) -> list[tuple[str, int]]:
        """Every tag with how many photos have it, most used first."""
        with self._catalog() as catalog:
            return catalog.tags.counts()

    def tagged(self, label: str) -> list[TaggedFile]:
        """The photos with one tag, most probable first."""
        from clipsearch.insight.tagging import tagged

        with self._catalog() as catalog:
            return tagged(catalog, label)

    def status(self, *, skipped: bool = False) -> Status:
        """Where the database is, its model, what it holds, its caches, and a running server. Loads no model."""
        from clipsearch.library.remote import server_info
        from clipsearch.search.status import database_status

        report = database_status(self.data_dir, list_skipped=skipped)
        return replace(report, server=server_info(self.data_dir))

    def _require_catalog(self) -> None:
        from clipsearch.errors import CatalogError

        if not self.data_dir.catalog.exists():
            raise CatalogError(f"no catalogue at {self.data_dir.catalog}: nothing is indexed there (check --db)")

    def _catalog(self):
        """The catalogue, opened to read (a context manager); nothing is created."""
        import contextlib

        from clipsearch.store.catalog import Catalog

        self._require_catalog()
        return contextlib.closing(Catalog(self.data_dir.catalog))
