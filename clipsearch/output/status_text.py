"""`clipsearch status` for people: one labelled line per fact, the roots with their options, warnings last."""

from __future__ import annotations

from rich.filesize import decimal as human_size

from clipsearch.search.status import IndexCacheState, QueryModelState, Status, ThumbnailState
from clipsearch.text import plural, visible

LABEL_WIDTH = 14


def status_lines(report: Status) -> list[str]:
    rows: list[tuple[str, str]] = [("database", report.database), ("model", report.model or "(none yet)"),
                                   ("images", str(report.images))]
    rows += _root_rows(report)
    rows += [("size on disk", human_size(report.size_bytes)), ("last indexed", report.last_indexed or "never"),
             ("vector index", _index_text(report.index)), ("query model", _query_model_text(report.query_model))]
    if report.engine:
        engine = report.engine
        rows.append(("index engine", f"OpenVINO {engine['version']} in {engine['precision']} ({engine['reason']}; "
                                     f"min cosine {engine['min_cosine']:.4f} to the model)"))
    if report.regions:
        rows.append(("regions", f"{report.regions} region vectors (`index --regions`): small objects are found"))
    if report.thumbnails is not None:
        rows.append(("thumbnails", _thumbnail_text(report.thumbnails)))
    rows.append(("server", _server_text(report.server)))
    if report.writer:
        rows.append(("indexing", f"now, by {report.writer}"))
    if report.switch:
        rows.append(("switching to", f"{report.switch.to}: {report.switch.embedded} of about {report.switch.files} "
                                     "files embedded (run `clipsearch index` to continue)"))
    if report.known_bad_files:
        rows.append(("skipped", f"{plural(report.known_bad_files, 'file')} could not be used (retried when they "
                                "change; `clipsearch status --skipped` lists them)"))
    if not report.private:
        rows.append(("warning", f"other users can read this database (chmod 700 {report.database})"))
    lines = [f"{label + ':' if label else '':<{LABEL_WIDTH}}{visible(value)}" for label, value in rows]
    if report.skipped is not None:
        lines.append("")
        lines += [f"{visible(f.path)}: {f.reason}" for f in report.skipped] or ["no skipped files"]
    return lines


def _root_rows(report: Status) -> list[tuple[str, str]]:
    if not report.roots:
        return [("roots", "(none)")]
    rows = []
    for number, root in enumerate(report.roots):
        options = _options_text(report.root_options.get(root, {}))
        rows.append(("roots" if number == 0 else "", root + (f"  ({options})" if options else "")))
    return rows


def _options_text(options: dict) -> str:
    parts = [f"--exclude {pattern}" for pattern in options.get("excludes", [])]
    if options.get("include_hidden"):
        parts.append("--include-hidden")
    if options.get("follow_symlinks"):
        parts.append("--follow-symlinks")
    limit = options.get("max_megapixels")
    if limit is not None and limit != 200:
        parts.append(f"--max-megapixels {limit:g}")
    return " ".join(parts)


def _thumbnail_text(thumbnails: ThumbnailState) -> str:
    cap = f"cap {human_size(thumbnails.cap_bytes)}, CLIPSEARCH_THUMBNAIL_CACHE_MB"
    if not thumbnails.entries:
        return f"none cached ({cap})"
    return f"{plural(thumbnails.entries, 'photo')}, {human_size(thumbnails.size_bytes)} ({cap})"


def _index_text(index: IndexCacheState) -> str:
    return {
        "current": f"current ({human_size(index.size_bytes or 0)})",
        "behind": "behind the catalogue (caught up on the next query)",
        "missing": "missing (rebuilt from the catalogue on the next query)",
        "damaged": "damaged or out of date (rebuilt from the catalogue on the next query)",
        "none": "none (nothing indexed yet)",
    }[index.state]


def _query_model_text(model: QueryModelState) -> str:
    if model.state == "ready":
        towers = " and ".join(model.towers)
        return f"{towers} tower{'s' if len(model.towers) > 1 else ''} in numpy: queries skip torch " \
               f"({human_size(model.size_bytes or 0)})"
    if model.state == "unavailable":
        return f"none: it cannot be made for this model with {model.software} ({model.reason}); queries load torch"
    if model.state == "damaged":
        return "damaged or out of date: not used (written again by the next index or query that loads the model)"
    return "none yet (written by the next index or query that loads the model)"


def _server_text(server: dict | None) -> str:
    if not server:
        return "not running (`clipsearch serve` answers queries in milliseconds)"
    return f"running (pid {server['pid']}, {plural(server['answered'], 'request')} answered)"
