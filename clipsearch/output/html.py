"""`-f html`: one self-contained page of results, to open offline or send.

Thumbnails are embedded as data: URIs, each links to its original as a file:// URL, and the page holds
the same fields as `-f json` (rank, score, path, size, date, camera, query). It references nothing on the
network: no scripts, fonts or styles from anywhere else, and a Content-Security-Policy that says so.
"""

from __future__ import annotations

import base64
import html
import json
import os
import typing
from collections.abc import Callable, Sequence
from pathlib import Path

from clipsearch.output.records import record
from clipsearch.search.results import Result
from clipsearch.text import visible

_STYLE = """
body{margin:0;padding:16px;background:#18181c;color:#eee;font:14px system-ui,sans-serif}
h1{font-size:18px;font-weight:600;margin:0 0 12px}
section{margin-bottom:24px}
ol{list-style:none;margin:0;padding:0;display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:12px}
li{background:#28282e;border-radius:6px;padding:8px;overflow:hidden}
li img{display:block;width:100%;height:200px;object-fit:contain;background:#111}
.meta{margin-top:6px;color:#aaa;font-size:12px;word-break:break-all}
.score{color:#eee;font-weight:600}
a{color:inherit;text-decoration:none}
"""
_CSP = "default-src 'none'; img-src data: file:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


def _data_uri(jpeg: bytes | None) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii") if jpeg else ""


def _item(result: Result, jpeg: bytes | None) -> str:
    fields = record(result, show_query=True)
    url = Path(result.path).as_uri() if os.path.isabs(result.path) else ""
    details = " · ".join(html.escape(str(v)) for v in (
        f"{result.width}×{result.height}" if result.width and result.height else None,
        (result.taken_at or "").replace("T", " ") or None, result.camera) if v)
    # The record as -f json writes it: pure ASCII, names that are not UTF-8 as \udcXX escapes.
    data = html.escape(json.dumps(fields))
    image = f'<img src="{_data_uri(jpeg)}" alt="{html.escape(visible(os.path.basename(result.path)))}">'
    meta = f"#{result.rank} · {result.score:.4f}"
    return (f'<li data-record="{data}"><a href="{html.escape(url)}">{image}</a><div class="meta"><span '
            f'class="score">{meta}</span><br>{html.escape(visible(result.path))}<br>{details}</div></li>')


def render_html(results: Sequence[Result], out: typing.BinaryIO, thumbnail: Callable[[str], bytes | None],
                title: str = "clipsearch") -> list[str]:
    sections = []
    for query in dict.fromkeys(r.query for r in results):
        items = "\n".join(_item(r, thumbnail(r.path)) for r in results if r.query == query)
        heading = f"<h1>{html.escape(visible(query or ''))}</h1>" if query else ""
        sections.append(f"<section>{heading}<ol>\n{items}\n</ol></section>")
    page = (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n<body>\n"
            + "\n".join(sections) + "\n</body></html>\n")
    out.write(page.encode("utf-8"))
    return []
