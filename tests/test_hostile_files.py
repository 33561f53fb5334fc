"""Hostile files, awkward names and symlinks, end to end through the real CLI.

Every bad file costs one clear `skipped PATH: reason` line and nothing else; every good file, whatever its
pixel mode or name, is indexed and comes back byte for byte. The assertions are mechanical (which files,
which lines, which bytes, an image found as itself), so they hold whatever the test model has learnt.
"""

from __future__ import annotations

import io
import json
import os
import random
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from helpers import TinyModel, model_args, run_cli
from PIL import Image
from scenes import random_scene, render

REPO = Path(__file__).resolve().parent.parent
SIZE = (160, 120)
EXIT_CANNOT_DROP_PRIVILEGES = 77

# Runs the real CLI in a child process, with two test-only twists. As root, it first gives up the two
# capabilities that let root read any file, and re-executes itself so that they are really gone: chmod 000
# then means "unreadable" for root too. With CLIPSEARCH_TEST_VANISH set, it deletes that file at the moment
# clipsearch opens it, which is the race between the crawl and the read, made deterministic.
HARNESS = """
import ctypes, os, sys

PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 24, 1, 2
if os.geteuid() == 0 and os.environ.get("CLIPSEARCH_TEST_NO_DAC") != "1":
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            sys.exit(77)
    os.environ["CLIPSEARCH_TEST_NO_DAC"] = "1"
    os.execv(sys.executable, [sys.executable, "-c", os.environ["CLIPSEARCH_TEST_HARNESS"], *sys.argv[1:]])

vanish = os.environ.get("CLIPSEARCH_TEST_VANISH")
if vanish:
    real_open = os.open

    def open_just_after_it_vanished(path, flags, mode=0o777, *, dir_fd=None):
        if os.fsencode(path) == os.fsencode(vanish) and os.path.lexists(path):
            os.unlink(path)
        return real_open(path, flags, mode, dir_fd=dir_fd)

    os.open = open_just_after_it_vanished

from clipsearch.cli import main

sys.argv[0] = "clipsearch"
main()
"""


def picture(seed: int, size: tuple[int, int] = SIZE) -> Image.Image:
    return render(random_scene(random.Random(seed), size="large"), *size)


def jpeg_bytes(seed: int) -> bytes:
    buffer = io.BytesIO()
    picture(seed).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height pixels (a decompression bomb's header) over a few bytes of data."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(
        b"IEND", b"")


def sixteen_bit(image: Image.Image) -> Image.Image:
    grey = np.asarray(image.convert("L")).astype("<u2") * 257
    return Image.frombytes("I;16", image.size, grey.tobytes())


def palette_with_transparency(image: Image.Image) -> Image.Image:
    paletted = image.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    paletted.info["transparency"] = 0
    return paletted


@dataclass(frozen=True)
class HostileFolder:
    root: Path
    good: list[Path]  # indexed as they are, or after a sensible conversion
    bad: dict[Path, str]  # -> the reason its skip line must give
    unreadable: Path
    vanishing: Path
    growing: Path
    growing_rest: bytes  # what the writer still has to append


def write_hostile_folder(root: Path) -> HostileFolder:
    root.mkdir()
    good = [root / "good.jpg", root / "good.png", root / "good.webp"]
    for seed, path in enumerate(good):
        picture(seed).save(path, quality=90)
    base = picture(10)
    converted = {
        "sixteen-bit.png": sixteen_bit(base),
        "cmyk.jpg": base.convert("CMYK"),
        "palette-transparent.png": palette_with_transparency(picture(11)),
        "grey-alpha.png": picture(12).convert("LA"),
    }
    for name, image in converted.items():
        image.save(root / name)
        assert Image.open(root / name).mode == image.mode  # the file really has the awkward mode
        good.append(root / name)
    frames = [picture(13), picture(14)]
    frames[0].save(root / "animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    good.append(root / "animated.gif")
    (root / "folder.jpg").mkdir()  # a folder named like a photo: walked, not read
    picture(15).save(root / "folder.jpg" / "inside.jpg")
    good.append(root / "folder.jpg" / "inside.jpg")

    (root / "truncated.jpg").write_bytes(jpeg_bytes(20)[:2000])
    (root / "empty.jpg").write_bytes(b"")
    (root / "notes.jpg").write_text("shopping list: milk, eggs\n")
    (root / "bomb.png").write_bytes(png_header_only(40000, 40000))
    Image.new("RGB", (1, 1), "red").save(root / "one-pixel.png")
    unreadable = root / "unreadable.jpg"
    unreadable.write_bytes(jpeg_bytes(21))
    unreadable.chmod(0)
    vanishing = root / "vanishing.jpg"
    vanishing.write_bytes(jpeg_bytes(22))
    growing = root / "growing.jpg"
    whole = jpeg_bytes(23)
    growing.write_bytes(whole[:1500])  # a camera or a copy still writing it
    os.mkfifo(root / "pipe.jpg")
    os.symlink("loop.jpg", root / "loop.jpg")
    os.symlink("nowhere.jpg", root / "dangling.jpg")
    bad = {
        root / "truncated.jpg": "image file is truncated",
        root / "empty.jpg": "empty file",
        root / "notes.jpg": "not an image (unrecognised content)",
        root / "bomb.png": "40000x40000 is 1600 megapixels, over the 200 MP limit (--max-megapixels)",
        root / "one-pixel.png": "1x1 pixels is too small to search",
        unreadable: "permission denied",
        vanishing: "no such file (it vanished)",
        growing: "image file is truncated",
        root / "pipe.jpg": "not a regular file",
    }
    return HostileFolder(root, good, bad, unreadable, vanishing, growing, whole[1500:])


def run_harness(*args: str | Path, vanish: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "CLIPSEARCH_TEST_HARNESS": HARNESS}
    if vanish is not None:
        env["CLIPSEARCH_TEST_VANISH"] = str(vanish)
    result = subprocess.run([sys.executable, "-c", HARNESS, *map(str, args)], env=env, capture_output=True,
                            text=True, timeout=300)
    if result.returncode == EXIT_CANNOT_DROP_PRIVILEGES:
        pytest.skip("running as root without CAP_SETPCAP: cannot make a chmod 000 file unreadable for root")
    return result


def skip_lines(stderr: str) -> list[str]:
    return sorted(line for line in stderr.splitlines() if line.startswith("skipped "))


def summary(stderr: str) -> str:
    line = next(line for line in stderr.splitlines() if line.startswith("indexed "))
    return line.rsplit(", in ", 1)[0]


def found_as_itself(db: Path, paths: list[Path]) -> dict[Path, dict]:
    """Each path's own record in `similar PATH --include-self`, which must score as the same picture."""
    result = run_cli("similar", *paths, "--include-self", "-n", "100", "-f", "jsonl", "--db", db)
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    own = {}
    for path in paths:
        # With one image there is one query, and records carry no "query" field.
        mine = [r for r in records if r.get("query", str(path)) == str(path) and r["path"] == str(path)]
        assert len(mine) == 1, f"{path} is not among its own results"
        own[path] = mine[0]
    return own


def test_hostile_files_cost_one_line_each_and_the_rest_is_indexed(tmp_path: Path, test_model: TinyModel) -> None:
    folder = write_hostile_folder(tmp_path / "photos")
    db = tmp_path / "db"
    try:
        # In a child process: the only way to make a file unreadable for root, and to delete a file at the
        # very moment clipsearch opens it.
        first = run_harness("index", folder.root, "--db", db, *model_args(test_model), vanish=folder.vanishing)
    finally:
        folder.unreadable.chmod(0o644)
    assert first.returncode == 0, first.stderr
    assert "Traceback" not in first.stderr and "error" not in first.stderr, first.stderr
    assert skip_lines(first.stderr) == sorted(f"skipped {path}: {reason}" for path, reason in folder.bad.items())
    assert summary(first.stderr) == "indexed 9, unchanged 0, moved 0, removed 0, skipped 9"
    # "indexing: N/M files" is the progress line a slow run prints every ten seconds when stderr is not a terminal.
    assert all(line.startswith(("loading ", "writing the query model", "indexing: ", "skipped ", "indexed "))
               for line in first.stderr.splitlines()), first.stderr

    own = found_as_itself(db, folder.good)
    assert all(record["score"] > 0.99 for record in own.values()), own
    assert {(r["width"], r["height"]) for r in own.values()} == {SIZE}  # the GIF's first frame, upright sizes

    # The writer finishes the file; links are followed this time, so the loop and the dangling link speak up.
    with folder.growing.open("ab") as handle:
        handle.write(folder.growing_rest)
    second = run_cli("index", folder.root, "--follow-symlinks", "--db", db)
    assert second.exit_code == 0, second.stderr
    assert skip_lines(second.stderr) == sorted([
        f"skipped {folder.root / 'loop.jpg'}: symlink loop",
        f"skipped {folder.root / 'dangling.jpg'}: broken symlink",
        f"skipped {folder.root / 'pipe.jpg'}: not a regular file",
    ])  # the bad files are remembered and not read again while they stay as they are
    # ... except one that could not be read at all: its permissions were fixed since, and it is indexed now.
    assert summary(second.stderr) == ("indexed 2, unchanged 9, moved 0, removed 0, skipped 8 (5 known from earlier "
                                      "runs: `clipsearch status --skipped` lists them)")
    assert found_as_itself(db, [folder.growing])[folder.growing]["score"] > 0.99
    status = json.loads(run_cli("status", "--json", "--db", db).stdout)
    assert (status["images"], status["known_bad_files"]) == (11, 5)  # the vanished file is no longer counted


AWKWARD_NAMES = [
    b"with space.jpg",
    b"it's \"quoted\".jpg",
    b"-n.jpg",
    b"--help.jpg",
    "été 北京.jpg".encode(),
    b"new\nline.jpg",
    b"not-utf8-\xff\xfe.jpg",
    b"tab\tand back\\slash.jpg",
    b"x'); DROP TABLE files; --.jpg",
]


def write_awkward_library(root: Path) -> dict[bytes, bytes]:
    """Photos under awkward names, plus `100%_done/` and its look-alike `100XXdone/`: absolute path -> content."""
    raw_root = os.fsencode(root)
    names = [*AWKWARD_NAMES, b"100%_done/a.jpg", b"100XXdone/b.jpg"]
    written = {}
    for seed, name in enumerate(names):
        path = raw_root + b"/" + name
        os.makedirs(os.path.dirname(path), exist_ok=True)
        data = jpeg_bytes(100 + seed)
        with open(path, "wb") as handle:
            handle.write(data)
        written[path] = data
    return written


def clipsearch(*args: bytes | str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The CLI as a shell runs it: argv as raw bytes, so no name is re-encoded on the way in."""
    command = [os.fsencode(sys.executable), b"-m", b"clipsearch", *(os.fsencode(a) for a in args)]
    return subprocess.run(command, env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=cwd, capture_output=True,
                          timeout=300)


def test_awkward_names_are_indexed_found_and_written_exactly(tmp_path: Path, test_model: TinyModel) -> None:
    root = tmp_path / "photos"
    files = write_awkward_library(root)
    db = tmp_path / "db"
    indexed = run_cli("index", root, "--db", db, *model_args(test_model))
    assert indexed.exit_code == 0, indexed.stderr
    assert summary(indexed.stderr) == f"indexed {len(files)}, unchanged 0, moved 0, removed 0, skipped 0"

    # JSON is pure ASCII and gives back every name's bytes through os.fsencode.
    as_json = run_cli("query", "anything", "-n", "50", "-f", "json", "--db", db)
    assert as_json.stdout_bytes.isascii()
    order = [os.fsencode(r["path"]) for r in json.loads(as_json.stdout)]
    assert sorted(order) == sorted(files)

    # Bare paths are the exact bytes, one per line, with a warning because one name holds a newline.
    paths = run_cli("query", "anything", "-n", "50", "-f", "paths", "--db", db)
    assert paths.stdout_bytes == b"".join(path + b"\n" for path in order)
    assert paths.stderr.count("warning: a path contains a newline") == 1

    # -0 through a real shell pipeline: xargs -0 hands every name to cp intact.
    copies = tmp_path / "copies"
    copies.mkdir()
    pipeline = f'"$@" anything -n 50 -0 | xargs -0 cp -t {copies}'
    subprocess.run(["bash", "-c", pipeline, "bash", sys.executable, "-m", "clipsearch", "query", "--db", str(db)],
                   check=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    copied = {name: (os.fsencode(copies) + b"/" + name) for name in os.listdir(os.fsencode(copies))}
    assert sorted(copied) == sorted(os.path.basename(path) for path in files)
    for path, data in files.items():
        with open(copied[os.path.basename(path)], "rb") as handle:
            assert handle.read() == data

    # A dash-led, a newline and a non-UTF-8 name as arguments, relative to the folder, after `--`.
    names = [b"-n.jpg", b"--help.jpg", b"new\nline.jpg", b"not-utf8-\xff\xfe.jpg", b"x'); DROP TABLE files; --.jpg"]
    similar = clipsearch("similar", "--db", db, "--include-self", "-n", "50", "-f", "jsonl", "--", *names, cwd=root)
    assert similar.returncode == 0, similar.stderr
    records = [json.loads(line) for line in similar.stdout.splitlines()]
    for name in names:
        own = [r for r in records if os.fsencode(r["query"]) == name and os.fsencode(r["path"]).endswith(b"/" + name)]
        assert len(own) == 1 and own[0]["score"] > 0.99, name

    missing = clipsearch("similar", "--db", db, "--", b"-missing\n.jpg", cwd=root)
    assert missing.returncode == 2 and missing.stderr.count(b"\n") == 1, missing.stderr
    assert missing.stderr.decode().endswith("/-missing\u240a.jpg: no such file\n"), missing.stderr  # ␊ shown

    forgotten = clipsearch("forget", "--db", db, "--", *names[:3], cwd=root)
    assert forgotten.returncode == 0 and b"forgot 3 files" in forgotten.stderr, forgotten.stderr
    left = run_cli("query", "anything", "-n", "50", "-f", "json", "--db", db)
    assert sorted(os.fsencode(r["path"]) for r in json.loads(left.stdout)) == sorted(
        path for path in files if os.path.basename(path) not in names[:3])
    assert clipsearch("forget", "--db", db, "--", names[0], cwd=root).returncode == 1  # nothing left to forget


def test_in_takes_a_folder_name_literally(tmp_path: Path, test_model: TinyModel) -> None:
    root = tmp_path / "photos"
    write_awkward_library(root)
    db = tmp_path / "db"
    assert run_cli("index", root, "--db", db, *model_args(test_model)).exit_code == 0

    def under(folder: str) -> tuple[int, list[str]]:
        result = run_cli("query", "anything", "-n", "50", "-f", "json", "--in", root / folder, "--db", db)
        return result.exit_code, [r["path"] for r in json.loads(result.stdout or "[]")]

    # In SQL LIKE, `%` and `_` are wildcards and "100%_done" would match "100XXdone" too.
    assert under("100%_done") == (0, [str(root / "100%_done" / "a.jpg")])
    assert under("100%_done/") == (0, [str(root / "100%_done" / "a.jpg")])
    assert under("100XXdone") == (0, [str(root / "100XXdone" / "b.jpg")])
    assert under("100")[0] == 2  # a prefix of a name is not a folder: there is no such folder to search


def test_symlinks_out_of_the_root_are_not_followed_unless_asked(tmp_path: Path, test_model: TinyModel) -> None:
    outside = tmp_path / "private"
    (outside / "diary").mkdir(parents=True)
    picture(1).save(outside / "secret.jpg")
    picture(2).save(outside / "diary" / "page.jpg")
    root = tmp_path / "photos"
    root.mkdir()
    picture(3).save(root / "mine.jpg")
    os.symlink(outside / "diary", root / "diary")
    os.symlink(outside / "secret.jpg", root / "holiday.jpg")
    db = tmp_path / "db"

    first = run_cli("index", root, "--db", db, *model_args(test_model))
    assert first.exit_code == 0, first.stderr
    assert summary(first.stderr) == "indexed 1, unchanged 0, moved 0, removed 0, skipped 0"
    assert skip_lines(first.stderr) == []  # links are ignored quietly, as documented
    everything = run_cli("query", "anything", "-n", "50", "-f", "json", "--db", db)
    assert [r["path"] for r in json.loads(everything.stdout)] == [str(root / "mine.jpg")]

    asked = run_cli("index", root, "--follow-symlinks", "--db", db)
    assert summary(asked.stderr) == "indexed 2, unchanged 1, moved 0, removed 0, skipped 0"
    everything = run_cli("query", "anything", "-n", "50", "-f", "json", "--db", db)
    # Stored by where they really are, so the catalogue never holds two names for one file.
    assert sorted(r["path"] for r in json.loads(everything.stdout)) == sorted(
        str(p) for p in (root / "mine.jpg", outside / "secret.jpg", outside / "diary" / "page.jpg"))

