"""The Starlette application of `clipsearch web`: routes, templates and assets, behind the security guard."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jinja2
from starlette.applications import Starlette
from starlette.convertors import Convertor, register_url_convertor
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from clipsearch.web import media, pages
from clipsearch.web.page_state import PageState
from clipsearch.web.security import Guard, csrf_token

HERE = Path(__file__).parent


class CatalogueId(Convertor[int]):
    """A catalogue id in a path: at most 19 digits (a longer number is no route, 404); one beyond SQLite's
    integers is no photo, 404 too (PageState.record)."""

    regex = "[0-9]{1,19}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(int(value))


register_url_convertor("catalogue_id", CatalogueId())


@dataclass(frozen=True)
class Access:
    """Who may use the page: the Host names that are this server's own, and the token its URL carries."""

    names: frozenset[str]
    token: str
    any_address: bool = False


def make_app(library: PageState, access: Access) -> Guard:
    """The page's ASGI application: the routes, inside the guard, which is outermost so that every response,
    Starlette's own errors included, goes through it."""
    routes = [
        Route("/", pages.results_page),
        Route("/view/{row_id:catalogue_id}", pages.photo_page),
        Route("/thumb/{row_id:catalogue_id}", media.thumbnail),
        Route("/photo/{row_id:catalogue_id}", media.photo),
        Route("/picture/{key:str}", media.dropped_picture),
        Route("/like", media.search_by_picture, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes)
    app.state.library = library
    app.state.csrf = csrf_token(access.token)
    # Every value a template shows (paths, queries, errors) is escaped: a file name is not markup.
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                                     undefined=jinja2.StrictUndefined)
    app.state.templates = Jinja2Templates(env=environment)
    return Guard(app, names=access.names, token=access.token, any_address=access.any_address)
