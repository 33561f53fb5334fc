"""The two pages: results (the search form and a grid of thumbnails) and one photo shown large.

Both are rendered on the server, so a plain text search works with JavaScript off; the script adds
keyboard navigation and dropping or pasting a picture.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from clipsearch.errors import ClipsearchError, UsageError
from clipsearch.search.results import Result, SearchAnswer, camera_name
from clipsearch.text import visible
from clipsearch.web.page_state import PageState
from clipsearch.web.query import PageQuery


@dataclass(frozen=True)
class Tile:
    """One result as the grid shows it."""

    id: int
    rank: int
    score: str
    name: str
    folder: str
    caption: str  # the tooltip: the whole path, size and date
    view: str  # the address of its page
    more: str  # the address of "more like this"
    size: tuple[int, int] | None = None  # the upright photo's width and height
    box: tuple[int, int, int, int] | None = None  # where a region matched (index --regions): x, y, w, h


def tile(result: Result, query: PageQuery) -> Tile:
    assert result.id is not None
    path = visible(result.path)
    folder, name = os.path.split(path)
    details = [path]
    if result.width and result.height:
        details.append(f"{result.width}×{result.height}")
    if result.taken_at:
        details.append(result.taken_at.replace("T", " "))
    size = (result.width, result.height) if result.width and result.height else None
    box = tuple(result.box) if result.box and size else None
    return Tile(result.id, result.rank, f"{result.score:.3f}", name, folder, " · ".join(details),
                f"/view/{result.id}" + query.link().removeprefix("/"), query.link(q="", picture="", like=result.id),
                size, box)


async def results_page(request: Request) -> Response:
    library: PageState = request.app.state.library
    error, answer, query = None, SearchAnswer([]), PageQuery()
    began = time.perf_counter()
    try:
        query = PageQuery.from_params(request.query_params)
        if query.searches:
            answer = await run_in_threadpool(_search, library, query)
    except ClipsearchError as problem:
        error = str(problem)
    searched = time.perf_counter()
    response = await render_results(request, query, answer, error, 400 if error else 200)
    # The browser's developer tools (and bench/web_page.py) read the server's share of the time from here.
    response.headers["server-timing"] = (f"search;dur={(searched - began) * 1e3:.1f}, "
                                         f"page;dur={(time.perf_counter() - searched) * 1e3:.1f}")
    return response


async def render_results(request: Request, query: PageQuery, answer: SearchAnswer, error: str | None,
                         status: int) -> Response:
    library: PageState = request.app.state.library
    tiles = [tile(result, query) for result in answer.results]
    heading = await run_in_threadpool(_heading, query, library)
    return await _render(request, "results.html", query, status, error=error, tiles=tiles, heading=heading,
                         missing=answer.missing, title=heading or "clipsearch",
                         folders=[t.folder for t in tiles])


async def _render(request: Request, template: str, query: PageQuery, status: int = 200, *,
                  folders: list[str] = (), error: str | None = None, **values: object) -> Response:
    """A page: the header's form (the query, and the filters' choices) around a template's own values."""
    library: PageState = request.app.state.library
    templates: Jinja2Templates = request.app.state.templates
    facets = await run_in_threadpool(library.facets)
    context = {"query": query, "facets": facets, "error": error, "csrf": request.app.state.csrf,
               "folders": list(dict.fromkeys([*facets.roots, *folders])), **values}
    return templates.TemplateResponse(request, template, context, status_code=status)


def _search(library: PageState, query: PageQuery) -> SearchAnswer:
    options = query.options()
    if query.like is not None:
        return library.search_like_row(query.like, options)
    if query.picture:
        return library.search_like_picture(query.picture, options)
    return library.search_text(query.q, options)


def _heading(query: PageQuery, library: PageState) -> str:
    if query.like is not None:
        record = library.record(query.like)
        return f"Photos like {os.path.basename(visible(record.path))}" if record else ""
    if query.picture:
        picture = library.picture(query.picture)
        return f"Photos like {visible(picture.name)}" if picture else ""
    return query.q


async def photo_page(request: Request) -> Response:
    library: PageState = request.app.state.library
    row_id = request.path_params["row_id"]
    try:
        query = PageQuery.from_params(request.query_params)
    except UsageError:
        query = PageQuery()
    record = await run_in_threadpool(library.record, row_id)
    if record is None:
        return await render_results(request, query, SearchAnswer([]), f"no photo has id {row_id} in this database",
                                    404)
    path = visible(record.path)
    size = await run_in_threadpool(library.file_size, record)  # only while it is still the catalogued file
    facts = [("Path", path)]
    if record.width and record.height:
        facts.append(("Pixels", f"{record.width} × {record.height}"))
    if size is not None:
        facts.append(("File size", f"{size / 1e6:.1f} MB" if size >= 1e5 else f"{size / 1e3:.0f} kB"))
    facts.append(("Taken", record.taken_at.replace("T", " ") if record.taken_at else "unknown"))
    camera = camera_name(record.camera_make, record.camera_model)
    if camera:
        facts.append(("Camera", camera))
    folder = os.path.dirname(record.path)
    return await _render(request, "photo.html", query, record=record, name=os.path.basename(path), facts=facts,
                         gone=size is None, more=query.link(q="", picture="", like=row_id), back=query.link(),
                         this_folder=query.link(folder=visible(folder)), title=os.path.basename(path))
