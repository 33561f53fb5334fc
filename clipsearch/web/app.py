"""The Starlette application of `clipsearch web`: routes, templates and assets, behind the security guard."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jinja2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from clipsearch.web import media, pages
from clipsearch.web.page_state import PageState
from clipsearch.web.security import Guard

HERE = Path(__file__).parent


@dataclass(frozen=True)
class Access:
    """Who may use the page: the Host names that are this server's own, and the token away from loopback."""

    names: frozenset[str]
    token: str | None = None
    any_address: bool = False


def make_app(library: PageState, access: Access) -> Starlette:
    routes = [
        Route("/", pages.results_page),
        Route("/view/{row_id:int}", pages.photo_page),
        Route("/thumb/{row_id:int}", media.thumbnail),
        Route("/photo/{row_id:int}", media.photo),
        Route("/picture/{key:str}", media.dropped_picture),
        Route("/like", media.search_by_picture, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    guard = Middleware(Guard, names=access.names, token=access.token, any_address=access.any_address)
    app = Starlette(routes=routes, middleware=[guard])
    app.state.library = library
    # Every value a template shows (paths, queries, errors) is escaped: a file name is not markup.
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                                     undefined=jinja2.StrictUndefined)
    app.state.templates = Jinja2Templates(env=environment)
    return app
