"""End to end through the CLI: real photos, the real tiny CLIP, real SQLite and hnswlib files."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import IndexedLibrary, TinyModel, load_encoder, model_args, run_cli, shows
from photos import write_photo
from scenes import COLOURS, DIRECTIONS, SHAPES, random_scene, shape_captions

from clipsearch.models.identity import ModelSpec, identify

REPO = Path(__file__).resolve().parent.parent


def query_json(db: Path, *args: str, input: str | None = None) -> list[dict]:
    result = run_cli("query", *args, "--db", db, "--format", "jsonl", input=input)
    assert result.exit_code in (0, 1), result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_index_reports_a_summary_and_skips_nothing_good(indexed_library: IndexedLibrary) -> None:
    assert f"indexed {len(indexed_library.photos)}, unchanged 0, moved 0, removed 0, skipped 0" in (
        indexed_library.index_stderr)


def test_text_queries_find_the_described_photo(indexed_library: IndexedLibrary) -> None:
    captions = shape_captions()
    records = query_json(indexed_library.db, "-", "-n", "1", input="\n".join(c for c, _, _ in captions))
    top = {r["query"]: indexed_library.photo(r["path"]) for r in records}
    misses = [text for text, colour, shape in captions if not shows(top[text], colour, shape)]
    assert len(misses) <= 0.1 * len(captions), f"{len(misses)} of {len(captions)} captions missed: {misses}"


def test_words_are_joined_and_results_carry_metadata(indexed_library: IndexedLibrary) -> None:
    records = query_json(indexed_library.db, "a", "large", "purple", "hexagon", "-n", "3")
    assert [r["rank"] for r in records] == [1, 2, 3]
    assert records[0]["score"] >= records[1]["score"] >= records[2]["score"]
    photo = indexed_library.photo(records[0]["path"])
    assert (records[0]["width"], records[0]["height"]) == photo.size
    assert records[0]["taken_at"] == photo.taken_at
    assert "query" not in records[0]


def test_exif_rotated_arrows_are_found_by_their_true_direction(tmp_path: Path, test_model: TinyModel) -> None:
    folder = tmp_path / "arrows"
    import random

    rng = random.Random(5)
    # Stored pixels point elsewhere: only an indexer that applies the EXIF orientation finds them.
    orientations = {"up": 6, "down": 8, "left": 3, "right": 6}
    for direction, orientation in orientations.items():
        for copy in range(2):
            scene = random_scene(rng, kind="arrow", direction=direction, size="large")
            write_photo(folder / f"{direction}-{copy}.jpg", scene, "jpeg-rotated", (1200, 1600), None, orientation)
    db = tmp_path / "db"
    assert run_cli("index", folder, "--db", db, *model_args(test_model)).exit_code == 0
    # Read without EXIF, every one of these files points another way, so this would find none.
    found = [(direction, Path(r["path"]).name.split("-")[0]) for direction in DIRECTIONS
             for r in query_json(db, f"an arrow pointing {direction}", "-n", "2")]
    right = sum(asked == shown for asked, shown in found)
    assert right >= 7, f"{right} of 8 right: {found}"


def test_similar_finds_a_look_alike_and_leaves_itself_out(indexed_library: IndexedLibrary, tmp_path: Path) -> None:
    target = next(p for p in indexed_library.photos if p.format == "jpeg" and len(p.scene.objects) == 1)
    # The same scene as a small PNG outside the library: embedded on the fly, exactly as indexing does.
    outside = write_photo(tmp_path / "look-alike.png", target.scene, "png", (640, 480))
    result = run_cli("similar", outside.path, "--db", indexed_library.db, "-n", "1", "-f", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)[0]["path"] == str(target.path)

    result = run_cli("similar", target.path, "--db", indexed_library.db, "-n", "3", "-f", "json")
    assert str(target.path) not in [r["path"] for r in json.loads(result.stdout)]
    result = run_cli("similar", target.path, "--include-self", "--db", indexed_library.db, "-n", "1", "-f", "json")
    best = json.loads(result.stdout)[0]
    assert best["path"] == str(target.path) and best["score"] > 0.999


def test_in_restricts_to_a_folder_and_still_fills_the_limit(indexed_library: IndexedLibrary) -> None:
    folder = indexed_library.root / "2019"
    in_folder = [p for p in indexed_library.photos if folder in p.path.parents]
    records = query_json(indexed_library.db, "a red star", "-n", "10", "--in", folder)
    assert len(records) == min(10, len(in_folder))
    assert all(r["path"].startswith(str(folder) + "/") for r in records)


def test_a_query_that_finds_something_prints_ten_results_and_exits_0(indexed_library: IndexedLibrary) -> None:
    found = run_cli("query", "a green square", "--db", indexed_library.db)
    assert found.exit_code == 0 and found.stdout.count("\n") == 10


def test_nothing_over_the_min_score_prints_nothing_and_exits_1(indexed_library: IndexedLibrary) -> None:
    nothing = run_cli("query", "a green square", "--min-score", "0.9999", "--db", indexed_library.db)
    assert (nothing.exit_code, nothing.stdout) == (1, "")


def test_a_missing_database_is_one_line_pointing_at_index_and_exits_2(tmp_path: Path) -> None:
    missing = run_cli("query", "anything", "--db", tmp_path / "no-such-db")
    assert missing.exit_code == 2
    assert missing.stderr.count("\n") == 1 and "clipsearch index" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_an_unknown_format_exits_2(indexed_library: IndexedLibrary) -> None:
    assert run_cli("query", "x", "--format", "yaml", "--db", indexed_library.db).exit_code == 2


def test_every_format_parses(indexed_library: IndexedLibrary) -> None:
    db = indexed_library.db
    as_json = json.loads(run_cli("query", "a blue circle", "-n", "4", "-f", "json", "--db", db).stdout)
    as_jsonl = [json.loads(line) for line in run_cli("query", "a blue circle", "-n", "4", "-f", "jsonl", "--db",
                                                     db).stdout.splitlines()]
    as_csv = list(csv.DictReader(io.StringIO(run_cli("query", "a blue circle", "-n", "4", "-f", "csv", "--db",
                                                     db).stdout)))
    tsv_lines = run_cli("query", "a blue circle", "-n", "4", "-f", "tsv", "--db", db).stdout.splitlines()
    paths = run_cli("query", "a blue circle", "-n", "4", "-f", "paths", "--db", db).stdout.splitlines()
    nul = run_cli("query", "a blue circle", "-n", "4", "-0", "--db", db).stdout_bytes.split(b"\0")
    expected = [r["path"] for r in as_json]
    assert len(expected) == 4
    assert [r["path"] for r in as_jsonl] == expected
    assert [r["path"] for r in as_csv] == expected
    assert [line.split("\t")[tsv_lines[0].split("\t").index("path")] for line in tsv_lines[1:]] == expected
    assert paths == expected
    assert nul == [p.encode() for p in expected] + [b""]
    assert {"rank", "score", "path", "width", "height", "taken_at"} <= set(as_json[0])
    table = run_cli("query", "a blue circle", "-n", "2", "-f", "table", "--db", db).stdout
    assert Path(expected[0]).name in table


def test_paths_and_nul_output_work_in_a_real_shell_pipeline(indexed_library: IndexedLibrary, tmp_path: Path) -> None:
    picks_lines, picks_nul = tmp_path / "lines", tmp_path / "nul"
    picks_lines.mkdir()
    picks_nul.mkdir()
    command = [sys.executable, "-m", "clipsearch", "query", "--db", str(indexed_library.db)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    script = (
        f'"$@" a photo of a red star -n 5 --format paths | xargs -d "\\n" cp -t {picks_lines} && '
        f'"$@" a photo of a red star -n 5 -0 | xargs -0 cp -t {picks_nul}'
    )
    subprocess.run(["bash", "-c", script, "bash", *command], check=True, env=env, timeout=120)
    assert len(list(picks_lines.iterdir())) == 5
    assert sorted(p.name for p in picks_lines.iterdir()) == sorted(p.name for p in picks_nul.iterdir())


def test_query_results_equal_exact_search_over_the_catalogue(indexed_library: IndexedLibrary,
                                                             test_model: TinyModel) -> None:
    with sqlite3.connect(indexed_library.db / "catalog.db") as connection:
        rows = connection.execute("SELECT path, vector FROM files").fetchall()
    paths = [os.fsdecode(row[0]) for row in rows]
    vectors = np.stack([np.frombuffer(row[1], dtype=np.float32) for row in rows])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    encoder = load_encoder(identify(ModelSpec(str(test_model.config), str(test_model.checkpoint))))
    for text in ("a yellow triangle", "an arrow pointing left", "a photo of a black cross on a white background"):
        scores = vectors @ encoder.embed_texts([text])[0]
        best = np.argsort(-scores)[:10]
        records = query_json(indexed_library.db, text, "-n", "10")
        assert [r["path"] for r in records] == [paths[i] for i in best]
        assert np.allclose([r["score"] for r in records], scores[best], atol=1e-3)


def test_a_deleted_hnsw_file_is_rebuilt(indexed_library: IndexedLibrary, tmp_path: Path) -> None:
    db = tmp_path / "db"
    shutil.copytree(indexed_library.db, db)
    before = query_json(db, "a white hexagon")
    (db / "vectors.hnsw").unlink()
    assert "missing" in run_cli("status", "--db", db).stdout
    assert query_json(db, "a white hexagon") == before
    # The query that rebuilt it saved it: the next one loads it.
    assert "current" in run_cli("status", "--db", db).stdout
    (db / "vectors.hnsw").write_bytes(b"garbage")
    assert query_json(db, "a white hexagon") == before
    assert "current" in run_cli("status", "--db", db).stdout


def test_incremental_add_modify_delete_and_rename(photo_library, test_model: TinyModel, tmp_path: Path) -> None:
    import random

    source_root, photos = photo_library
    root = tmp_path / "photos"
    for photo in photos[:12]:
        target = root / photo.path.relative_to(source_root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(photo.path, target)
    db = tmp_path / "db"
    first = run_cli("index", root, "--db", db, *model_args(test_model))
    assert "indexed 12, unchanged 0" in first.stderr

    again = run_cli("index", root, "--db", db)  # the database remembers its model
    assert "indexed 0, unchanged 12, moved 0, removed 0, skipped 0" in again.stderr
    assert "loading" not in again.stderr  # nothing to embed: the model is not even loaded

    rng = random.Random(11)
    # New content that no copied photo shows, so each query below has exactly one right answer.
    absent = [(c, s) for c in COLOURS for s in SHAPES if not any(shows(p, c, s) for p in photos[:12])]
    (add_colour, add_shape), (new_colour, new_shape) = absent[0], absent[-1]
    added = write_photo(root / "new" / "added.jpg",
                        random_scene(rng, kind=add_shape, colour=add_colour, size="large"), "jpeg", (800, 600))
    files = sorted(root.rglob("*.*"))
    modified, deleted, renamed = files[0], files[1], files[2]
    write_photo(modified, random_scene(rng, kind=new_shape, colour=new_colour, size="large"), "jpeg", (800, 600))
    deleted.unlink()
    with sqlite3.connect(db / "catalog.db") as connection:
        old = connection.execute("SELECT id, vector FROM files WHERE path = ?", (os.fsencode(renamed),)).fetchone()
    moved_to = root / "renamed" / "moved here.jpg"
    moved_to.parent.mkdir()
    renamed.rename(moved_to)

    result = run_cli("index", root, "--db", db)
    assert "indexed 2, unchanged 9, moved 1, removed 1, skipped 0" in result.stderr
    with sqlite3.connect(db / "catalog.db") as connection:
        new = connection.execute("SELECT id, vector FROM files WHERE path = ?", (os.fsencode(moved_to),)).fetchone()
        assert connection.execute("SELECT count(*) FROM files").fetchone()[0] == 12
    assert new == old  # same row, same vector: the rename was not re-embedded
    assert query_json(db, f"a {add_colour} {add_shape}", "-n", "1")[0]["path"] == str(added.path)
    assert query_json(db, f"a {new_colour} {new_shape}", "-n", "1")[0]["path"] == str(modified)
    assert str(deleted) not in [r["path"] for r in query_json(db, "a circle", "-n", "20")]


def test_bad_files_are_skipped_with_one_line_each(tmp_path: Path, photo_library, test_model: TinyModel) -> None:
    _, photos = photo_library
    root = tmp_path / "photos"
    root.mkdir()
    shutil.copy2(photos[0].path, root / "good.jpg")
    (root / "notes.jpg").write_text("this is not a picture")
    (root / "empty.png").write_bytes(b"")
    (root / "half.jpg").write_bytes(photos[0].path.read_bytes()[:5000])
    result = run_cli("index", root, "--db", tmp_path / "db", *model_args(test_model))
    assert result.exit_code == 0
    skipped = [line for line in result.stderr.splitlines() if line.startswith("skipped ")]
    assert sorted(line.split(":")[0] for line in skipped) == sorted(
        f"skipped {root / name}" for name in ("notes.jpg", "empty.png", "half.jpg"))
    assert "indexed 1, unchanged 0, moved 0, removed 0, skipped 3" in result.stderr
    again = run_cli("index", root, "--db", tmp_path / "db")  # known bad files are not retried while unchanged
    assert "indexed 0, unchanged 1, moved 0, removed 0, skipped 3" in again.stderr
    assert "skipped " + str(root) not in again.stderr


def test_another_model_is_refused_unless_reindex(indexed_library: IndexedLibrary, tmp_path: Path) -> None:
    refused = run_cli("query", "a cat", "--model", "ViT-B-32", "--db", indexed_library.db)
    assert refused.exit_code == 2
    assert "indexed with clipsearch-test-tiny" in refused.stderr and "--reindex" in refused.stderr
    db = tmp_path / "db"
    shutil.copytree(indexed_library.db, db)
    refused = run_cli("index", indexed_library.root, "--model", "RN50", "--pretrained", "openai", "--db", db)
    assert refused.exit_code == 2 and "not RN50 (openai)" in refused.stderr


def test_the_default_model_and_what_a_model_name_alone_means(tmp_path: Path, photo_library) -> None:
    _, photos = photo_library
    root = tmp_path / "photos"
    root.mkdir()
    shutil.copy2(photos[0].path, root / "one.jpg")
    # Offline, the download error names the weights each choice means.
    default = run_cli("index", root, "--db", tmp_path / "a")
    assert default.exit_code == 2 and "ViT-B-32-256 (datacomp_s34b_b86k)" in default.stderr, default.stderr
    named = run_cli("index", root, "--db", tmp_path / "b", "--model", "ViT-B-32")
    assert named.exit_code == 2 and "ViT-B-32 (laion2b_s34b_b79k)" in named.stderr, named.stderr


def test_offline_download_fails_with_a_clear_message(tmp_path: Path, photo_library, test_model: TinyModel) -> None:
    _, photos = photo_library
    root = tmp_path / "photos"
    root.mkdir()
    shutil.copy2(photos[0].path, root / "one.jpg")
    result = run_cli("index", root, "--db", tmp_path / "db", "--model", "RN50", "--pretrained", "openai")
    assert result.exit_code == 2
    assert "could not download" in result.stderr and "--pretrained /path/to/" in result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    # Following the advice with a local checkpoint works: the failed run did not tie the database to RN50.
    retry = run_cli("index", root, "--db", tmp_path / "db", *model_args(test_model))
    assert retry.exit_code == 0 and "indexed 1," in retry.stderr


@pytest.fixture()
def db_copy(indexed_library: IndexedLibrary, tmp_path: Path) -> Path:
    """A copy of the indexed library's database, for a test that changes it."""
    db = tmp_path / "db"
    shutil.copytree(indexed_library.db, db)
    return db


def in_folder(indexed_library: IndexedLibrary, folder: Path) -> int:
    return sum(1 for p in indexed_library.photos if folder in p.path.parents)


def test_status_reports_the_images_roots_model_and_database(indexed_library: IndexedLibrary, db_copy: Path) -> None:
    report = json.loads(run_cli("status", "--json", "--db", db_copy).stdout)
    assert report["images"] == len(indexed_library.photos)
    assert report["roots"] == [str(indexed_library.root)]
    assert report["model_identity"]["architecture"] == "clipsearch-test-tiny"
    assert report["database"] == str(db_copy)


def test_forget_removes_a_folder_from_status_and_results(indexed_library: IndexedLibrary, db_copy: Path) -> None:
    folder = indexed_library.root / "phone"
    forgotten = in_folder(indexed_library, folder)
    result = run_cli("forget", folder, "--db", db_copy)
    assert result.exit_code == 0 and f"forgot {forgotten} files" in result.stderr
    assert json.loads(run_cli("status", "--json", "--db", db_copy).stdout)["images"] == len(
        indexed_library.photos) - forgotten
    assert not any(r["path"].startswith(str(folder)) for r in query_json(db_copy, "an arrow pointing up", "-n", "60"))


def test_a_second_forget_reaches_the_index_too_and_leaves_it_current(indexed_library: IndexedLibrary,
                                                                     db_copy: Path) -> None:
    first, other = indexed_library.root / "phone", indexed_library.root / "2020"
    assert run_cli("forget", first, "--db", db_copy).exit_code == 0
    # The second forget comes after the first one's tombstones were pruned.
    assert run_cli("forget", other, "--db", db_copy).exit_code == 0
    left = len(indexed_library.photos) - in_folder(indexed_library, first) - in_folder(indexed_library, other)
    records = query_json(db_copy, "an arrow pointing up", "-n", "100")
    assert len(records) == left and not any(r["path"].startswith(str(other)) for r in records)
    assert "current" in run_cli("status", "--db", db_copy).stdout


def test_help_and_status_do_not_import_torch(indexed_library: IndexedLibrary) -> None:
    code = (
        "import sys\nfrom clipsearch.cli import app\n"
        "for args in (['--help'], ['query', '--help'], ['status', '--db', sys.argv[1]]):\n"
        "    try:\n        app(args)\n    except SystemExit:\n        pass\n"
        "heavy = sorted(m for m in ('torch', 'open_clip', 'torchvision', 'transformers') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code, str(indexed_library.db)], check=True, cwd=REPO, timeout=60,
                   capture_output=True)


def test_version_names_clipsearch() -> None:
    assert run_cli("--version").stdout.startswith("clipsearch ")


def test_every_command_s_help_shows_examples() -> None:
    import typer

    from clipsearch.cli import app

    commands = sorted(typer.main.get_command(app).commands)
    assert {"index", "query", "similar", "status", "forget", "serve"} <= set(commands)
    for command in commands:
        assert "Examples:" in run_cli(command, "--help").stdout, command


def test_every_shape_and_colour_is_in_the_library(indexed_library: IndexedLibrary) -> None:
    # Guards the semantic tests above: they assume one unmistakable photo per colour and shape.
    assert all(any(shows(p, c, s) for p in indexed_library.photos) for c in COLOURS for s in SHAPES)


def test_reindex_embeds_again_and_a_rename_onto_an_indexed_file_replaces_it(photo_library, test_model: TinyModel,
                                                                             tmp_path: Path) -> None:
    _, photos = photo_library
    root = tmp_path / "photos"
    root.mkdir()
    singles = [p for p in photos if p.format == "jpeg" and len(p.scene.objects) == 1][:3]
    for k, photo in enumerate(singles):
        shutil.copy2(photo.path, root / f"{k}.jpg")
    db = tmp_path / "db"
    run_cli("index", root, "--db", db, *model_args(test_model))
    assert "indexed 3, unchanged 0" in run_cli("index", root, "--reindex", "--db", db).stderr

    (root / "0.jpg").replace(root / "1.jpg")  # mv over an indexed file
    result = run_cli("index", root, "--db", db)
    assert result.exit_code == 0, result.stderr
    assert "indexed 0, unchanged 1, moved 1, removed 0" in result.stderr
    scene = singles[0].scene.main
    records = query_json(db, f"a {scene.colour} {scene.kind}", "-n", "5")
    assert sorted(Path(r["path"]).name for r in records) == ["1.jpg", "2.jpg"]
    assert records[0]["path"] == str(root / "1.jpg")


def test_progress_counts_every_file_once(photo_library, test_model: TinyModel, tmp_path: Path) -> None:
    from clipsearch.config import DataDir
    from clipsearch.indexing.pipeline import index_paths
    from clipsearch.indexing.request import IndexOptions, Reporter

    _, photos = photo_library
    root = tmp_path / "photos"
    root.mkdir()
    for k, photo in enumerate(photos[:9]):
        shutil.copy2(photo.path, root / f"{k}{photo.path.suffix}")
    (root / "broken.jpg").write_text("not a picture")
    totals, steps = [], []
    reporter = Reporter(started=totals.append, advanced=steps.append)
    options = IndexOptions(roots=(str(root),), model=str(test_model.config), pretrained=str(test_model.checkpoint),
                           batch_size=2)
    stats = index_paths(DataDir(tmp_path / "db"), options, reporter)
    assert (stats.indexed, stats.skipped) == (9, 1)
    assert totals == [10] and sum(steps) == 10 and len(steps) >= 5


# --- the command line's grammar: --db anywhere, options whose value may be left out, BLAS threads ----------------
def _parsed(command: str, *args: str) -> dict:
    """The values `clipsearch COMMAND ARGS...` gives its command, parsed only."""
    import typer

    from clipsearch.cli import app

    return typer.main.get_command(app).commands[command].make_context(command, list(args)).params


def test_db_is_taken_before_or_after_the_command_and_after_wins(indexed_library: IndexedLibrary, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    db, elsewhere = indexed_library.db, tmp_path / "elsewhere"

    def database(*args: str) -> str:
        result = run_cli(*args)
        assert result.exit_code == 0, result.stderr
        return json.loads(result.stdout)["database"]

    assert database("--db", db, "status", "--json") == str(db)
    assert database("status", "--json", "--db", db) == str(db)
    assert database("--db", elsewhere, "status", "--json", "--db", db) == str(db)  # after the command wins
    assert database("--db", db, "status", "--json", "--db", elsewhere) == str(elsewhere)
    monkeypatch.setenv("CLIPSEARCH_DB", str(elsewhere))
    assert database("status", "--json") == str(elsewhere)
    assert database("--db", db, "status", "--json") == str(db)  # the command line wins over the variable
    found = run_cli("--db", db, "query", "a red circle", "-n", "1", "-f", "json")
    assert found.exit_code == 0 and len(json.loads(found.stdout)) == 1
    from helpers import one_error_line

    one_error_line(run_cli("--db", db / "catalog.db", "status"), "--db takes the database folder")
    monkeypatch.setenv("CLIPSEARCH_DB", str(db / "catalog.db"))
    one_error_line(run_cli("status"), "$CLIPSEARCH_DB takes the database folder")


def test_preview_and_ray_alone_mean_auto_and_take_only_a_word_of_their_values_form(tmp_path: Path) -> None:
    from helpers import one_error_line

    from clipsearch.output.preview import PreviewMode

    assert _parsed("query", "cat", "--preview")["preview"] == PreviewMode.auto
    assert _parsed("query", "--preview", "-n", "3", "cat")["preview"] == PreviewMode.auto
    assert _parsed("query", "--preview", "kitty", "cat")["preview"] == PreviewMode.kitty
    assert _parsed("similar", "--preview=blocks", "a.jpg")["preview"] == PreviewMode.blocks
    assert _parsed("query", "cat")["preview"] is None
    assert _parsed("index", "--ray")["ray"] == "auto"
    assert _parsed("index", "--ray", "--quiet")["ray"] == "auto"
    assert _parsed("index", "--ray", "--", "photos")["ray"] == "auto"
    assert _parsed("index", "--ray", "10.0.0.1:6379", "photos")["ray"] == "10.0.0.1:6379"
    assert _parsed("index", "photos", "--ray=local")["ray"] == "local"
    assert _parsed("query", "--preview", "sunset")["preview"] == PreviewMode.auto  # a query, not a preview mode
    assert list(_parsed("query", "--preview", "sunset")["text"]) == ["sunset"]
    assert _parsed("index", "--ray", "photos")["ray"] == "auto"
    assert [str(p) for p in _parsed("index", "--ray", "photos")["paths"]] == ["photos"]
    folder = tmp_path / "a:b"  # an existing folder is a word like any other: what is on disk never decides
    folder.mkdir()
    assert _parsed("index", "--ray", str(folder))["ray"] == str(folder)
    one_error_line(run_cli("query", "sun", "--preview=sunset", "--db", tmp_path), "--preview", "'sunset'")
    one_error_line(run_cli("index", tmp_path, "--ray=nowhere", "--db", tmp_path / "db"),
                   "--ray nowhere: not a Ray address")


def test_the_shared_options_reach_query_and_similar(indexed_library: IndexedLibrary) -> None:
    folder = indexed_library.root / "2019"
    photo = next(p.path for p in indexed_library.photos if p.path.is_relative_to(folder) and p.taken_at)
    shared = ["--in", folder, "--after", "2019", "--before", "2020", "-n", "3", "-0", "--db", indexed_library.db]
    for command in (["query", "a shape"], ["similar", photo, "--include-self"]):
        result = run_cli(*command, *shared)
        assert result.exit_code == 0, result.stderr
        paths = result.stdout_bytes.split(b"\0")[:-1]
        assert len(paths) == 3 and all(os.fsdecode(p).startswith(f"{folder}/") for p in paths)
        dates = [indexed_library.photo(os.fsdecode(p)).taken_at for p in paths]
        assert all(taken and taken.startswith("2019") for taken in dates)
    assert os.fsdecode(paths[0]) == str(photo)  # --include-self reached similar


def test_query_leaves_one_blas_thread(indexed_library: IndexedLibrary) -> None:
    code = ("import json, sys, threadpoolctl, typer\nfrom clipsearch.cli import app\n"
            "typer.main.get_command(app).main(['query', 'a red circle', '--db', sys.argv[1], '-f', 'json'],"
            " standalone_mode=False)\n"
            "print(json.dumps([i['num_threads'] for i in threadpoolctl.threadpool_info() if i['user_api'] == 'blas']),"
            " file=sys.stderr)\n")
    environment = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    done = subprocess.run([sys.executable, "-c", code, str(indexed_library.db)], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env={**environment, "CLIPSEARCH_NO_SERVER": "1"})
    assert done.returncode == 0, done.stderr
    threads = json.loads(done.stderr.strip().splitlines()[-1])
    assert threads and set(threads) == {1}, threads  # numpy's OpenBLAS is loaded, and limited to one thread
