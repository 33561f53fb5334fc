"""The layout holds: import layers without cycles, small modules and functions, quiet pipes, and a library that
logs what it has to say instead of printing it."""

from __future__ import annotations

import ast
import logging
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import IndexedLibrary, TinyModel, write_photos

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "clipsearch"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80
LONGER_BECAUSE = f"Longer than {MAX_MODULE_LINES} lines because"  # a longer module's docstring: a line saying why


def test_import_layers_and_no_cycles() -> None:
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert lint_imports, "import-linter is part of the test extras"
    done = subprocess.run([lint_imports, "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_modules_and_functions_stay_small() -> None:
    too_long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text()
        name = path.relative_to(REPO)
        tree = ast.parse(source)
        docstring = ast.get_docstring(tree) or ""
        explained = any(line.strip().startswith(LONGER_BECAUSE) for line in docstring.splitlines())
        if source.count("\n") > MAX_MODULE_LINES and not explained:
            too_long.append(f"{name}: {source.count(chr(10))} lines, and no docstring line saying why")
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}:{node.lineno} {node.name}() is {length} lines")
    assert not too_long, too_long


def test_a_reader_that_stops_early_ends_the_output_quietly(indexed_library: IndexedLibrary) -> None:
    # More output than a pipe buffers, so clipsearch is still writing when `head` goes away.
    queries = "".join(f"a red circle {i}\n" for i in range(300))
    script = (f'set -o pipefail; "{sys.executable}" -m clipsearch query - -f jsonl -n 60 --db "$1" | head -n 1 '
              '>/dev/null; echo "exit=${PIPESTATUS[0]}"')
    environment = {**os.environ, "CLIPSEARCH_NO_SERVER": "1"}
    done = subprocess.run(["bash", "-c", script, "bash", str(indexed_library.db)], input=queries, text=True,
                          capture_output=True, cwd=REPO, env=environment, timeout=120)
    assert done.stdout.strip() == "exit=0", (done.stdout, done.stderr)
    assert done.stderr == ""


def test_the_python_api_says_what_the_cli_says_through_logging_and_prints_nothing(
        tmp_path: Path, test_model: TinyModel, caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str]) -> None:
    from clipsearch import Library
    from clipsearch.store.lock import writer_lock

    kept, gone = tmp_path / "kept", tmp_path / "gone"
    write_photos(kept, 2, seed=1)
    write_photos(gone, 1, seed=2)
    caplog.set_level(logging.INFO, logger="clipsearch")
    library = Library(tmp_path / "db", use_server=False)

    def said() -> list[str]:
        return [record.getMessage() for record in caplog.records if record.name.startswith("clipsearch")]

    with ThreadPoolExecutor(1) as pool:
        with writer_lock(library.data_dir, wait=False):  # another writer: the index waits, and says so
            first = pool.submit(library.index, [kept, gone], model=str(test_model.config),
                                pretrained=str(test_model.checkpoint), engine="torch")
            for _ in range(1200):  # a bounded wait for the message, not a measurement
                if any(line.startswith("waiting for clipsearch pid") for line in said()) or first.done():
                    break
                time.sleep(0.05)
            assert not first.done() and any(line.startswith("waiting for clipsearch pid") for line in said()), said()
        assert first.result(timeout=300).indexed == 3
    shutil.rmtree(gone)
    assert library.index().unchanged == 2  # every folder indexed before, and one is gone
    assert f"not re-indexing {os.path.realpath(gone)}: it no longer exists" in " ".join(said())
    assert all(record.levelno == logging.INFO for record in caplog.records if record.name.startswith("clipsearch"))
    printed = capsys.readouterr()  # logging is the caller's to configure: nothing is printed behind its back
    assert printed.out == "" and not any(line in printed.err for line in said()), printed
