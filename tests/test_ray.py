"""`index --ray`: the same catalogue as local indexing, through workers that die, drivers that are killed,
files that only the driver can read, and weights that differ between driver and workers.

One Ray cluster serves the session. Its head is started by the tests in a child that gave up root's power to
read any file (as the hostile-files tests do), so its workers are like a cluster running as another user:
a chmod 000 file is unreadable on the workers, while this process (the driver) can still crawl it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers import IndexedLibrary, TinyModel, model_args, run_cli

pytestmark = pytest.mark.slow
# The test cluster uses token authentication, as Ray sets clusters up since 2.59. Ray reads these when it is
# imported, so they are set first; the CLI's subprocesses inherit them, as a user's shell would give them.
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_AUTH_TOKEN", os.urandom(24).hex())
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
ray = pytest.importorskip("ray")

REPO = Path(__file__).resolve().parent.parent
RAY = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
DROP_FILE_OVERRIDE = """
import ctypes, os, sys
if os.geteuid() == 0:
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        libc.prctl(24, capability, 0, 0, 0)  # PR_CAPBSET_DROP: gone for good at the exec below
os.execv(sys.argv[1], sys.argv[1:])
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def ray_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    temp = tmp_path_factory.mktemp("ray")
    start = [sys.executable, "-c", DROP_FILE_OVERRIDE, RAY, "start", "--head", f"--port={port}", "--num-cpus=2",
             "--num-gpus=0", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
             f"--dashboard-port={_free_port()}", f"--temp-dir={temp}", "--disable-usage-stats"]
    try:
        started = subprocess.run(start, capture_output=True, text=True, timeout=180)
        assert started.returncode == 0, started.stdout + started.stderr
        yield f"{socket.gethostbyname(socket.gethostname())}:{port}"
    finally:
        subprocess.run([RAY, "stop", "--force"], capture_output=True, timeout=120)


def catalogue(db: Path) -> dict[str, tuple[str, np.ndarray]]:
    connection = sqlite3.connect(f"file:{db / 'catalog.db'}?mode=ro", uri=True)
    try:
        return {os.fsdecode(path): (digest, np.frombuffer(vector, np.float32))
                for path, digest, vector in connection.execute("SELECT path, hash, vector FROM files")}
    finally:
        connection.close()


def assert_same_catalogue(db: Path, reference: Path) -> None:
    ours, theirs = catalogue(db), catalogue(reference)
    assert ours.keys() == theirs.keys()
    assert all(ours[path][0] == theirs[path][0] for path in ours)  # the same content hashes
    assert min(float(ours[path][1] @ theirs[path][1]) for path in ours) >= 0.9999


def search(db: Path, text: str) -> list[str]:
    result = run_cli("query", text, "--db", db, "-n", "10", "-f", "json")
    return [record["path"] for record in json.loads(result.stdout)]


def test_a_ray_index_is_the_local_index(ray_address: str, indexed_library: IndexedLibrary, test_model: TinyModel,
                                        tmp_path: Path) -> None:
    db = tmp_path / "db"
    result = run_cli("index", indexed_library.root, "--db", db, *model_args(test_model), "--ray", ray_address)
    assert result.exit_code == 0, result.stderr
    assert "Ray actor" in result.stderr and f"indexed {len(indexed_library.photos)}," in result.stderr
    assert_same_catalogue(db, indexed_library.db)
    for text in ("a red circle", "an arrow pointing up", "a yellow star"):
        assert search(db, text) == search(indexed_library.db, text)
    again = run_cli("index", "--db", db, "--ray", ray_address)  # incremental: nothing goes to the cluster
    assert f"unchanged {len(indexed_library.photos)}," in again.stderr and "indexed 0," in again.stderr


def _library_with_an_unreadable_file(indexed_library: IndexedLibrary, tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "photos"
    shutil.copytree(indexed_library.root / "2019", root)
    locked = next(path for path in sorted(root.rglob("*")) if path.is_file())
    locked.chmod(0)
    return root, locked


def test_a_file_a_worker_cannot_read_is_one_skipped_line_and_ship_bytes_reads_it(
        ray_address: str, indexed_library: IndexedLibrary, test_model: TinyModel, tmp_path: Path) -> None:
    root, locked = _library_with_an_unreadable_file(indexed_library, tmp_path)
    files = sum(1 for path in root.rglob("*") if path.is_file())
    db = tmp_path / "db"
    first = run_cli("index", root, "--db", db, *model_args(test_model), "--ray", ray_address)
    assert first.exit_code == 0, first.stderr
    skipped = [line for line in first.stderr.splitlines() if line.startswith("skipped ")]
    assert skipped == [f"skipped {locked}: permission denied"]
    assert f"indexed {files - 1}," in first.stderr
    # This process can read it (root, or its owner): shipped from here, the workers embed it.
    shipped = run_cli("index", root, "--db", db, "--ray", ray_address, "--ray-ship-bytes")
    assert shipped.exit_code == 0, shipped.stderr
    assert "indexed 1," in shipped.stderr and "skipped 0" in shipped.stderr


def test_when_no_worker_can_read_anything_it_suggests_shipping_bytes(
        ray_address: str, indexed_library: IndexedLibrary, test_model: TinyModel, tmp_path: Path) -> None:
    root = tmp_path / "photos"
    shutil.copytree(indexed_library.root / "downloads", root)
    for path in root.rglob("*"):
        if path.is_file():
            path.chmod(0)
    result = run_cli("index", root, "--db", tmp_path / "db", *model_args(test_model), "--ray", ray_address)
    assert "no Ray worker could read a single file" in result.stderr and "--ray-ship-bytes" in result.stderr


def test_a_worker_that_dies_is_replaced_and_every_file_comes_once(
        ray_address: str, indexed_library: IndexedLibrary, test_model: TinyModel, tmp_path: Path) -> None:
    root = tmp_path / "photos"
    for copy in range(16):  # enough work that the kill lands mid-run, well after the first commit
        shutil.copytree(indexed_library.root, root / f"copy{copy}")
    files = sum(1 for path in root.rglob("*") if path.is_file())
    db = tmp_path / "db"
    driver = subprocess.Popen([sys.executable, "-m", "clipsearch", "index", str(root), "--db", str(db),
                               *map(str, model_args(test_model)), "--ray", ray_address, "--ray-actors", "1"],
                              cwd=REPO, stderr=subprocess.PIPE, text=True)
    worker, killed = None, None
    deadline = time.monotonic() + 120
    while killed is None and time.monotonic() < deadline and driver.poll() is None:
        # Asking Ray for its actors takes a while, so the worker is looked up once and the kill waits
        # only on the catalogue, which is cheap to poll: it lands just after the first committed batch.
        if worker is None:
            worker = _embedding_worker_pid(ray_address)
        elif _committed(db) > 0:
            os.kill(worker, signal.SIGKILL)
            killed = worker
        time.sleep(0.02)
    _, stderr = driver.communicate(timeout=300)
    assert killed is not None, stderr
    assert driver.returncode == 0, stderr
    assert f"indexed {files}," in stderr and "skipped 0" in stderr
    assert _committed(db) == files


def test_more_actors_than_the_cluster_can_place_is_one_clear_error(ray_address: str, indexed_library: IndexedLibrary,
                                                                   test_model: TinyModel, tmp_path: Path) -> None:
    result = run_cli("index", indexed_library.root, "--db", tmp_path / "db", *model_args(test_model), "--ray",
                     ray_address, "--ray-actors", "3")  # the test cluster has 2 CPUs: Ray would wait forever
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1] == ("clipsearch: error: --ray-actors 3: the Ray cluster has 2 CPUs, "
                                                      "so at most 2 actors fit")


def _embedding_worker_pid(ray_address: str) -> int | None:
    from ray.util.state import list_actors

    alive = list_actors(address=ray_address, filters=[("class_name", "=", "EmbeddingWorker"), ("state", "=", "ALIVE")])
    return next((actor.pid for actor in alive if actor.pid), None)


def _committed(db: Path) -> int:
    try:
        connection = sqlite3.connect(f"file:{db / 'catalog.db'}?mode=ro", uri=True, timeout=5)
        try:
            return connection.execute("SELECT count(*) FROM files").fetchone()[0]
        finally:
            connection.close()
    except sqlite3.Error:
        return 0


def test_a_killed_driver_loses_nothing_committed_and_the_next_run_finishes(
        ray_address: str, indexed_library: IndexedLibrary, test_model: TinyModel, tmp_path: Path) -> None:
    root = tmp_path / "photos"
    # Enough rows for several commits (a Ray run commits every 1,024 rows or 2 s), so the kill lands mid-run.
    for copy in range(48):
        shutil.copytree(indexed_library.root, root / f"copy{copy}")
    files = sum(1 for path in root.rglob("*") if path.is_file())
    db = tmp_path / "db"
    driver = subprocess.Popen([sys.executable, "-m", "clipsearch", "index", str(root), "--db", str(db),
                               *map(str, model_args(test_model)), "--ray", ray_address],
                              cwd=REPO, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while _committed(db) == 0 and time.monotonic() < deadline and driver.poll() is None:
        time.sleep(0.02)
    before = _committed(db)
    driver.kill()
    driver.wait()
    assert 0 < before < files
    resumed = run_cli("index", root, "--db", db, "--ray", ray_address)  # the folder: the first run never finished
    assert resumed.exit_code == 0, resumed.stderr
    assert _committed(db) == files
    reference = {Path(path).relative_to(indexed_library.root): value
                 for path, value in catalogue(indexed_library.db).items()}
    for path, (digest, vector) in catalogue(db).items():
        expected_digest, expected = reference[Path(*Path(path).relative_to(root).parts[1:])]  # under copyN/
        assert digest == expected_digest and float(vector @ expected) >= 0.9999


def test_workers_with_other_weights_are_refused(ray_address: str, indexed_library: IndexedLibrary,
                                                test_model: TinyModel, tmp_path: Path) -> None:
    checkpoint = tmp_path / "model.pt"
    shutil.copy(test_model.checkpoint, checkpoint)
    db = tmp_path / "db"
    root = tmp_path / "photos"
    shutil.copytree(indexed_library.root / "downloads", root)
    assert run_cli("index", root, "--db", db, "--model", test_model.config, "--pretrained", checkpoint).exit_code == 0
    # The checkpoint changes under the same name, size and time (a careless sync): only a worker that reads it
    # all can tell.
    info = checkpoint.stat()
    with checkpoint.open("r+b") as handle:
        handle.seek(info.st_size // 2)
        byte = handle.read(1)
        handle.seek(info.st_size // 2)
        handle.write(bytes([byte[0] ^ 0xFF]))
    os.utime(checkpoint, ns=(info.st_atime_ns, info.st_mtime_ns))
    (root / "new.jpg").write_bytes((indexed_library.root / "2019" / "summer" / "DSC_4810.JPG").read_bytes()[:-1])
    refused = run_cli("index", "--db", db, "--ray", ray_address)
    assert refused.exit_code == 2
    error = refused.stderr.strip().splitlines()[-1]
    assert error.startswith("clipsearch: error: a Ray worker on ") and "has other weights than this database's" in error
    assert _committed(db) == 4  # nothing was written
