"""Robustness, round 2: each failure an adversarial review found, reproduced, and shown to hold now."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, TinyModel, model_args, one_error_line, run_cli, running_server, status, write_photos
from PIL import Image
from scenes import random_scene, render


def paths_of(db: Path, *extra: str) -> list[str]:
    result = run_cli("query", "a red circle", "-n", "100", "-f", "json", "--db", db, *extra)
    assert result.exit_code == 0, result.stderr
    return sorted(r["path"] for r in json.loads(result.stdout))


@pytest.fixture()
def indexed(tmp_path: Path, test_model: TinyModel) -> tuple[Path, Path]:
    photos, db = tmp_path / "photos", tmp_path / "db"
    write_photos(photos, 6, seed=3)
    result = run_cli("index", photos, "--db", db, *model_args(test_model))
    assert result.exit_code == 0, result.stderr
    return photos, db


# --- 1. a model switch is atomic -----------------------------------------------------------------------------
@pytest.mark.parametrize("failure", ["download", "text file as checkpoint", "weights of another model"])
def test_a_failed_model_switch_changes_nothing(indexed: tuple[Path, Path], random_vit: TinyModel, tmp_path: Path,
                                               failure: str) -> None:
    photos, db = indexed
    before, answers = status(db), paths_of(db)
    if failure == "download":
        switch = ["--model", "ViT-B-32", "--pretrained", "laion2b_s34b_b79k"]  # HF_HUB_OFFLINE: cannot download
    elif failure == "text file as checkpoint":
        notes = tmp_path / "notes.pt"
        notes.write_text("not weights\n" * 100)
        switch = ["--model", str(random_vit.config), "--pretrained", str(notes)]
    else:
        switch = ["--model", str(random_vit.config), "--pretrained", str(REPO / "tests/model/clipsearch-test-tiny.pt")]
    line = one_error_line(run_cli("index", photos, "--db", db, "--reindex", *switch))
    assert "internal error" not in line
    after = status(db)
    assert (after["images"], after["model"], after["roots"]) == (before["images"], before["model"], before["roots"])
    assert after["switch"] is None and paths_of(db) == answers


def ranked(db: Path) -> list[tuple[str, float]]:
    """The paths and scores of a query, best first."""
    result = run_cli("query", "a red circle", "-n", "100", "-f", "json", "--db", db)
    assert result.exit_code == 0, result.stderr
    return [(r["path"], r["score"]) for r in json.loads(result.stdout)]


@pytest.mark.slow
def test_a_model_switch_answers_from_the_old_model_until_it_is_complete(tmp_path: Path, test_model: TinyModel,
                                                                       random_vit: TinyModel) -> None:
    photos, db = tmp_path / "photos", tmp_path / "db"
    write_photos(photos, 120, seed=9, size=(96, 72))
    assert run_cli("index", photos, "--db", db, *model_args(test_model)).exit_code == 0
    old_model, answers = status(db)["model"], ranked(db)
    switch = subprocess.Popen([sys.executable, "-m", "clipsearch", "index", "--db", str(db), "--reindex",
                               *model_args(random_vit), "--batch-size", "2", "--workers", "1"], cwd=REPO,
                              stderr=subprocess.PIPE, text=True)
    for _ in range(1200):  # Ctrl-C once the new model's vectors have begun to arrive
        report = status(db)
        if (report["switch"] and report["switch"]["embedded"] >= 4) or switch.poll() is not None:
            break
        time.sleep(0.05)
    switch.send_signal(signal.SIGINT)
    _, stderr = switch.communicate(timeout=120)
    assert switch.returncode == 130, stderr
    midway = status(db)
    assert midway["model"] == old_model and midway["images"] == 120
    assert 4 <= midway["switch"]["embedded"] < 120
    with sqlite3.connect(db / "catalog.db") as connection:  # the new model's vectors wait, staged
        assert {len(v) for (v,) in connection.execute("SELECT vector FROM staged")} == {64 * 4}
    assert ranked(db) == answers  # the old model's vectors, through the old model: same photos, same scores
    done = run_cli("index", "--db", db)
    assert done.exit_code == 0, done.stderr
    assert "continuing the switch" in done.stderr and "switched to tiny-random-vit" in done.stderr
    after = status(db)
    assert after["model"] != old_model and after["images"] == 120 and after["switch"] is None
    with sqlite3.connect(db / "catalog.db") as connection:
        sizes = {len(v) for (v,) in connection.execute("SELECT vector FROM files")}
        assert sizes == {64 * 4} and connection.execute("SELECT count(*) FROM staged").fetchone()[0] == 0
    assert ranked(db) != answers  # now the new model's scores


@pytest.mark.slow
def test_kill_9_in_the_middle_of_a_model_switch_leaves_a_database_that_answers(tmp_path: Path, test_model: TinyModel,
                                                                             random_vit: TinyModel) -> None:
    photos, db = tmp_path / "photos", tmp_path / "db"
    write_photos(photos, 300, seed=8, size=(96, 72))
    assert run_cli("index", photos, "--db", db, *model_args(test_model)).exit_code == 0
    answers, old_model = paths_of(db), status(db)["model"]
    switch = subprocess.Popen([sys.executable, "-m", "clipsearch", "index", "--db", str(db), "--reindex",
                               *model_args(random_vit), "--batch-size", "2", "--workers", "1"], cwd=REPO,
                              stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        report = status(db)
        if report["switch"] and report["switch"]["embedded"] >= 20:
            break
        time.sleep(0.1)
    switch.kill()
    switch.wait()
    midway = status(db)
    assert midway["model"] == old_model and midway["images"] == 300 and midway["switch"]["embedded"] >= 20
    assert paths_of(db) == answers  # still the old model's vectors, through the old model
    resumed = run_cli("index", "--db", db)
    assert resumed.exit_code == 0, resumed.stderr
    assert "continuing the switch" in resumed.stderr and "switched to" in resumed.stderr
    final = status(db)
    assert final["model"].startswith("tiny-random-vit") and final["images"] == 300 and final["switch"] is None


# --- 2. extreme aspect ratios, and a file that kills the process --------------------------------------------
def peak_rss_of(command: list[str]) -> tuple[subprocess.CompletedProcess, float]:
    """Run a command in a child; its peak resident memory in MB (ru_maxrss of children, this child the largest)."""
    done = subprocess.run([sys.executable, "-c", "import resource, subprocess, sys\n"
                           "done = subprocess.run(sys.argv[1:])\n"
                           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
                           "sys.exit(done.returncode)", *command], capture_output=True, text=True, cwd=REPO,
                          timeout=300)
    return done, int(done.stdout.strip().splitlines()[-1]) / 1024


def test_an_extreme_aspect_ratio_costs_memory_by_the_model_input_not_the_image(tmp_path: Path,
                                                                               test_model: TinyModel) -> None:
    strip = tmp_path / "strip" / "strip.png"
    strip.parent.mkdir()
    Image.new("RGB", (8, 1_000_000), (220, 40, 40)).save(strip)  # 60 KB, 8 MP: far under the 200 MP limit
    db = tmp_path / "db"
    done, peak = peak_rss_of([sys.executable, "-m", "clipsearch", "index", str(strip.parent), "--db", str(db),
                              *model_args(test_model)])
    assert done.returncode == 0, done.stderr
    assert "indexed 1," in done.stderr
    assert peak < 1200, f"peak RSS {peak:.0f} MB"  # it was 3.5 GB: the short side was scaled up before the crop
    similar, peak = peak_rss_of([sys.executable, "-m", "clipsearch", "similar", str(strip), "--db", str(db),
                                 "--include-self"])
    assert similar.returncode == 0, similar.stderr
    assert peak < 1200, f"peak RSS {peak:.0f} MB"


def in_flight(db: Path) -> set[str]:
    try:
        with sqlite3.connect(f"file:{db / 'catalog.db'}?mode=ro", uri=True) as connection:
            return {os.fsdecode(p) for (p,) in connection.execute("SELECT path FROM in_flight")}
    except sqlite3.OperationalError:
        return set()


@pytest.mark.slow
def test_a_file_that_kills_its_decoder_is_named_and_skipped_not_fatal(tmp_path: Path, test_model: TinyModel) -> None:
    photos, db = tmp_path / "photos", tmp_path / "db"
    write_photos(photos, 5, seed=4)
    heavy = photos / "zz-heavy.png"  # a second or so to decode: over the 0.2 s limit set below
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (5000, 8000, 3), dtype=np.uint8)).save(
        heavy, compress_level=1)
    command = [sys.executable, "-m", "clipsearch", "index", str(photos), "--db", str(db), *model_args(test_model)]
    first = subprocess.Popen(command, cwd=REPO, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while str(heavy) not in in_flight(db) and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    first.kill()  # as the out-of-memory killer would, while the heavy file is being decoded
    first.wait()
    assert str(heavy) in in_flight(db)  # a death leaves the files it was decoding marked
    environment = {**os.environ, "CLIPSEARCH_DECODE_TIME_LIMIT_S": "0.2"}
    second = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, env=environment)
    assert second.returncode == 0, second.stderr
    assert f"skipped {heavy}: decoding it killed the decoder (over 0.2 s)" in second.stderr
    assert "indexed 5," in second.stderr and in_flight(db) == set()
    third = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert "indexed 0, unchanged 5" in third.stderr and "skipped 1 (1 known" in third.stderr, third.stderr


# --- 3, 4 and 11. the server survives its clients -------------------------------------------------------------
@pytest.fixture()
def server(indexed: tuple[Path, Path]):
    _, db = indexed
    with running_server(db) as process:
        yield db, process


def socket_of(db: Path) -> str:
    from clipsearch.config import DataDir
    from clipsearch.library.remote import socket_path

    return str(socket_path(DataDir(db)))


def raw_client(db: Path, payload: bytes, *, read: bool = True, timeout: float = 10) -> bytes:
    """Send bytes as they are to the server's socket; its whole answer, unless told not to wait for one."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(timeout)
        connection.connect(socket_of(db))
        connection.sendall(payload)
        if not read:
            return b""
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def post(body: bytes, route: str = "/v1/search") -> bytes:
    return (f"POST {route} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


def json_answer(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def wait_until_answering(db: Path) -> None:
    from clipsearch.config import DataDir
    from clipsearch.library.remote import server_info

    for _ in range(600):
        if server_info(DataDir(db)) is not None:
            return
        time.sleep(0.1)
    pytest.fail("the server stopped answering")


def served_answers(db: Path) -> int:
    from clipsearch.config import DataDir
    from clipsearch.library.remote import server_info

    info = server_info(DataDir(db))
    assert info is not None, "the server should still answer"
    return info["answered"]


@pytest.mark.slow
def test_the_server_survives_clients_that_leave_early_and_hostile_requests(server) -> None:
    db, process = server
    request = post(json.dumps({"kind": "text", "queries": ["a red circle"] * 50, "options": {"limit": 60}}).encode())
    for _ in range(20):  # gone before the answer: the server must not die of it
        with contextlib.suppress(OSError):
            raw_client(db, request, read=False)
    wait_until_answering(db)  # the abandoned requests are worked through; meanwhile new ones get 503
    for hostile in (b"[" * 1500, b"{" * 100_000, b"\xff\xfe garbage", b'{"kind": "text", "queries": "not a list", '
                    b'"options": {}}', b'{"kind": "image", "queries": [123], "options": {"limit": 1}}',
                    b'{"kind": "text", "queries": ["x"], "options": {"limit": "many"}}',
                    b'{"kind": "sideways", "queries": [], "options": {}}'):
        status, answer = json_answer(raw_client(db, post(hostile)))
        assert status == 400 and answer["exit_code"] == 2 and answer["error"]
    for route in ("/v1/classify", "/v1/locate", "/v1/duplicates"):
        status, answer = json_answer(raw_client(db, post(b'{"images": 7, "text": [], "within": 3}', route)))
        assert status == 400 and answer["exit_code"] == 2
    status, answer = json_answer(raw_client(db, b"GET /etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    assert status == 404 and "no such route" in answer["error"]
    assert raw_client(db, b"\x00\x01 not http at all\r\n\r\n").startswith(b"HTTP/1.1 400")
    assert process.poll() is None
    before = served_answers(db)
    assert run_cli("query", "a red circle", "--db", db).exit_code == 0
    assert served_answers(db) == before + 1


@pytest.mark.slow
def test_a_stopped_or_swamped_server_still_leaves_its_clients_an_answer(server) -> None:
    db, process = server
    answers = paths_of(db)
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.connect(socket_of(db))  # connects, then says nothing: the others must not wait for it
    trickle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    trickle.connect(socket_of(db))
    trickle.sendall(b"POST /v1/search HTTP/1.1\r\n")  # a start, and never more
    before = served_answers(db)
    assert paths_of(db) == answers
    assert served_answers(db) == before + 1  # the server itself answered, past the silent and the trickling
    too_big = post(json.dumps({"kind": "text", "queries": ["x" * 1000] * 6000, "options": {}}).encode())
    with contextlib.suppress(OSError):  # refused: the server answers 413, or closes before reading it all
        status, _ = json_answer(raw_client(db, too_big))
        assert status == 413
    assert process.poll() is None
    process.send_signal(signal.SIGSTOP)  # connections are accepted by the kernel, and nothing answers
    try:
        assert paths_of(db) == answers  # searched in-process instead
        stopped = run_cli("status", "--db", db)
        assert stopped.exit_code == 0, stopped.stderr
        assert "not running" in stopped.stdout  # a server that does not answer is not counted on
    finally:
        process.send_signal(signal.SIGCONT)
        silent.close()
        trickle.close()


# --- 5. a damaged index file is never loaded -------------------------------------------------------------------
def test_damage_in_the_middle_of_the_index_file_is_found_and_rebuilt(indexed: tuple[Path, Path]) -> None:
    photos, db = indexed
    answers = paths_of(db)
    index_file = db / "vectors.hnsw"
    size = index_file.stat().st_size
    with index_file.open("r+b") as handle:  # 4 KB of random bytes in the middle: head and tail untouched
        handle.seek(size // 2 - 2048)
        handle.write(os.urandom(4096))
    assert status(db)["index"]["state"] == "damaged"
    assert paths_of(db) == answers  # rebuilt from the catalogue, not loaded
    assert run_cli("index", photos, "--db", db).exit_code == 0
    assert status(db)["index"]["state"] == "current"


# --- 6, 7, 8. indexing keeps every file it should -----------------------------------------------------------
def rows(db: Path) -> dict[str, tuple]:
    with sqlite3.connect(db / "catalog.db") as connection:
        return {os.fsdecode(p): (w, h, t, v) for p, w, h, t, v in
                connection.execute("SELECT path, width, height, taken_at, vector FROM files")}


def test_a_rename_and_a_copy_in_one_run_keep_both_files(indexed: tuple[Path, Path]) -> None:
    photos, db = indexed
    first = sorted(photos.iterdir())[0]
    before = rows(db)[str(first)]
    renamed, copied = photos / "renamed.jpg", photos / "copied.jpg"
    first.rename(renamed)
    shutil.copy2(renamed, copied)
    result = run_cli("index", photos, "--db", db)
    assert result.exit_code == 0 and "moved 1," in result.stderr, result.stderr
    after = rows(db)
    assert str(first) not in after and len(after) == 6 + 1
    assert after[str(renamed)] == before and after[str(copied)] == before  # vector, size and date, both


def test_files_reached_through_a_followed_link_go_when_the_link_and_target_go(tmp_path: Path,
                                                                            test_model: TinyModel) -> None:
    photos, outside, db = tmp_path / "photos", tmp_path / "outside", tmp_path / "db"
    write_photos(photos, 2, seed=5)
    write_photos(outside, 3, seed=6)
    (photos / "linked").symlink_to(outside)
    assert run_cli("index", photos, "--db", db, "--follow-symlinks", *model_args(test_model)).exit_code == 0
    assert status(db)["images"] == 5
    (photos / "linked").unlink()
    shutil.rmtree(outside)
    again = run_cli("index", photos, "--db", db)
    assert again.exit_code == 0 and "removed 3," in again.stderr, again.stderr
    assert status(db)["images"] == 2


def test_a_hidden_folder_indexed_by_name_survives_an_index_of_its_parent(tmp_path: Path,
                                                                        test_model: TinyModel) -> None:
    photos, db = tmp_path / "photos", tmp_path / "db"
    write_photos(photos, 2, seed=5)
    write_photos(photos / ".private", 1, seed=6)
    assert run_cli("index", photos / ".private", "--db", db, *model_args(test_model)).exit_code == 0
    parent = run_cli("index", photos, "--db", db)
    assert parent.exit_code == 0 and "removed 0," in parent.stderr, parent.stderr
    assert status(db)["images"] == 3


# --- 9, 10. the database is private, and its lock is not a weapon ----------------------------------------------
def test_a_new_database_is_private_to_its_user(indexed: tuple[Path, Path]) -> None:
    _, db = indexed
    assert stat.S_IMODE(db.stat().st_mode) == 0o700
    for name in ("catalog.db", "vectors.hnsw", "vectors.json", "writer.lock"):
        assert stat.S_IMODE((db / name).stat().st_mode) & 0o077 == 0, name
    assert status(db)["private"] is True
    db.chmod(0o755)
    assert status(db)["private"] is False
    assert "other users can read this database" in run_cli("status", "--db", db).stdout


def test_the_lock_file_is_never_written_through_a_symlink(indexed: tuple[Path, Path], tmp_path: Path) -> None:
    photos, db = indexed
    victim = tmp_path / "bashrc"
    victim.write_text("the victim's file\n")
    (db / "writer.lock").unlink()
    (db / "writer.lock").symlink_to(victim)
    one_error_line(run_cli("index", photos, "--db", db), "symbolic link")
    assert victim.read_text() == "the victim's file\n"


def test_a_database_folder_others_can_write_to_is_refused_for_writing(indexed: tuple[Path, Path]) -> None:
    photos, db = indexed
    db.chmod(0o777)
    one_error_line(run_cli("index", photos, "--db", db), "other users can write")
    one_error_line(run_cli("forget", photos, "--db", db), "other users can write")
    assert run_cli("query", "a red circle", "--db", db).exit_code == 0  # reading it is still the user's choice


# --- 12, 13, 14. arguments and small failures ---------------------------------------------------------------
@pytest.mark.parametrize("arguments, mention", [
    (["index", ".", "--max-megapixels", "nan"], "--max-megapixels"),
    (["query", "x", "--min-score", "nan"], "--min-score"),
    (["query", "x", "--in", "/nonexistent"], "not under an indexed folder"),
    (["query", "x", "-n", "0"], "--limit"),
    (["index", ".", "--batch-size", "0"], "--batch-size"),
    (["similar", ""], "empty path"),
])
def test_bad_arguments_are_one_line_and_exit_2(indexed: tuple[Path, Path], arguments: list[str],
                                               mention: str) -> None:
    _, db = indexed
    one_error_line(run_cli(*arguments, "--db", db), mention)


def test_in_naming_a_file_is_refused_as_not_a_folder(indexed: tuple[Path, Path]) -> None:
    photos, db = indexed
    one_error_line(run_cli("query", "x", "--in", sorted(photos.iterdir())[0], "--db", db), "not a folder")


def test_a_nul_in_a_path_on_stdin_is_refused(indexed: tuple[Path, Path]) -> None:
    _, db = indexed
    one_error_line(run_cli("similar", "-", "--db", db, input=b"bad\x00name.jpg\n"), "NUL")


def test_db_naming_the_catalogue_file_is_refused_with_its_folder(indexed: tuple[Path, Path]) -> None:
    _, db = indexed
    one_error_line(run_cli("status", "--db", db / "catalog.db"), f"takes the database folder, not its catalogue: "
                                                                 f"use {db}")


def test_a_png_with_a_large_icc_profile_is_indexed(tmp_path: Path, test_model: TinyModel) -> None:
    photos, db = tmp_path / "photos", tmp_path / "db"
    photos.mkdir()
    profile = os.urandom(4 << 20)  # incompressible: 4 MB in the file's iCCP chunk
    render(random_scene(random.Random(1)), 160, 120).save(photos / "print.png", icc_profile=profile)
    result = run_cli("index", photos, "--db", db, *model_args(test_model))
    assert result.exit_code == 0 and "indexed 1," in result.stderr and "skipped 0" in result.stderr, result.stderr


def test_status_labels_every_root(tmp_path: Path, test_model: TinyModel) -> None:
    db = tmp_path / "db"
    for name in ("a", "b"):
        write_photos(tmp_path / name, 1, seed=7)
        assert run_cli("index", tmp_path / name, "--db", db, *model_args(test_model)).exit_code == 0
    lines = run_cli("status", "--db", db).stdout.splitlines()
    roots = [line for line in lines if str(tmp_path / "a") in line or str(tmp_path / "b") in line]
    assert len(roots) == 2 and not any(line.lstrip().startswith(":") for line in lines)
