"""The documentation stays true to the code: the CLI reference is current, and internal links lead somewhere.

docs/commands.md ends with every command's `--help`, written by docs/cli_reference.py; when a command changes,
run `python docs/cli_reference.py` and commit docs/commands.md. `mkdocs build --strict` (in .ci/run) checks the
site's links as well; this test also covers README.md and CHANGELOG.md.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import unicodedata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
GITHUB = "https://github.com/clipsearch/clipsearch/"
MARKDOWN = [REPO / "README.md", REPO / "CHANGELOG.md", *sorted(DOCS.glob("*.md"))]


def _load_generator():
    spec = importlib.util.spec_from_file_location("cli_reference", DOCS / "cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(sys.platform != "linux", reason="the --db default in the help is the platform's data folder")
def test_cli_reference_is_current():
    generator = _load_generator()
    current = generator.COMMANDS_MD.read_text(encoding="utf-8")
    wanted = generator.render(current)
    if wanted != current:
        changed = [line for line in wanted.splitlines() if line not in set(current.splitlines())][:10]
        pytest.fail("docs/commands.md is out of date with the commands' --help: run `python docs/cli_reference.py` "
                    "and commit docs/commands.md. First new lines:\n" + "\n".join(changed))


def test_cli_reference_covers_every_command():
    import typer

    from clipsearch.cli import app

    group = typer.main.get_command(app)
    text = (DOCS / "commands.md").read_text(encoding="utf-8")
    for name, command in group.commands.items():
        if not command.hidden:
            assert f"$ clipsearch {name} --help" in text, f"docs/commands.md has no --help of `clipsearch {name}`"


def _prose(text: str) -> str:
    """The text without fenced code blocks and inline code, where a `](x)` is not a link."""
    text = re.sub(r"^(```|~~~).*?^\1[^\n]*$", "", text, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "``", text)


def _slugs(path: Path) -> set[str]:
    """Every heading's anchor, as MkDocs (Python-Markdown's toc) and GitHub make them."""
    slugs: set[str] = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.sub(r"^```.*?^```", "", path.read_text("utf-8"),
                                                                 flags=re.M | re.S), flags=re.M):
        plain = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
        ascii_text = unicodedata.normalize("NFKD", plain).encode("ascii", "ignore").decode()
        slugs.add(re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", ascii_text).strip().lower()))
        slugs.add(re.sub(r"[^\w\- ]", "", plain.strip().lower()).replace(" ", "-"))
    return slugs


def _links(path: Path) -> list[str]:
    return re.findall(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", _prose(path.read_text(encoding="utf-8")))


@pytest.mark.parametrize("page", MARKDOWN, ids=[str(p.relative_to(REPO)) for p in MARKDOWN])
def test_internal_links_lead_somewhere(page: Path):
    broken = []
    for link in _links(page):
        if link.startswith(GITHUB):  # a file of this repository, linked from the site
            match = re.match(re.escape(GITHUB) + r"(?:blob|tree)/main/([^#?]+)", link)
            if match is None:
                continue
            target, anchor = REPO / match.group(1), None
        elif re.match(r"^[a-z][a-z0-9+.-]*:", link):  # another site, mailto:
            continue
        else:
            file_part, _, anchor = link.partition("#")
            target = (page.parent / file_part).resolve() if file_part else page
        if not target.exists():
            broken.append(f"{link}: no such file")
        elif anchor and target.suffix == ".md" and anchor not in _slugs(target):
            broken.append(f"{link}: no heading with that anchor in {target.relative_to(REPO)}")
    assert not broken, f"broken links in {page.relative_to(REPO)}:\n" + "\n".join(broken)
