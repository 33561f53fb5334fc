"""Models from Hugging Face transformers (`--model hf:…`) and open_clip's multilingual kind, through the CLI.

The Chinese–English model is the small one trained for these tests (tests/model/train_zh.py): a real
ChineseCLIPModel with its own WordPiece tokenizer, loaded by transformers from its folder, offline.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import MODEL_DIR, IndexedLibrary, run_cli
from hf_tiny import tiny_clip, tiny_siglip, tiny_xlm_roberta_open_clip
from photos import Photo

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
ZH_MODEL = MODEL_DIR / "clipsearch-test-zh"


def shows(photo: Photo, colour: str, kind: str) -> bool:
    main = photo.scene.main
    return (main.colour, main.kind) == (colour, kind)


@pytest.fixture(scope="module")
def zh_library(photo_library: tuple[Path, list[Photo]], tmp_path_factory: pytest.TempPathFactory) -> IndexedLibrary:
    if not (ZH_MODEL / "config.json").is_file():  # as conftest does for the other test models
        pytest.skip(f"{ZH_MODEL} is missing: train it with `python tests/model/train_zh.py`")
    root, photos = photo_library
    db = tmp_path_factory.mktemp("zh") / "db"
    result = run_cli("index", root, "--db", db, "--model", f"hf:{ZH_MODEL}")
    assert result.exit_code == 0, result.stderr
    return IndexedLibrary(db, root, photos, result.stderr)


def top(library: IndexedLibrary, query: str, *extra: str) -> Photo:
    result = run_cli("query", query, "--db", library.db, "-n", "1", "-f", "json", *extra)
    assert result.exit_code == 0, result.stderr
    return library.photo(json.loads(result.stdout)[0]["path"])


@pytest.mark.parametrize(("query", "colour", "kind"), [
    ("红色的圆形", "red", "circle"), ("一个蓝色的正方形", "blue", "square"), ("a red circle", "red", "circle"),
    ("a blue square", "blue", "square"),
])
def test_a_chinese_english_model_finds_photos_in_both_languages(zh_library: IndexedLibrary, query: str, colour: str,
                                                                kind: str) -> None:
    assert shows(top(zh_library, query), colour, kind)


def test_the_database_records_the_model_and_its_query_copy(zh_library: IndexedLibrary) -> None:
    status = json.loads(run_cli("status", "--json", "--db", zh_library.db).stdout)
    identity = status["model_identity"]
    assert identity["architecture"] == "hf:chinese_clip"
    assert identity["checkpoint_path"] == str(ZH_MODEL.resolve()) and len(identity["checkpoint_sha256"]) == 64
    assert status["query_model"]["state"] == "ready" and status["query_model"]["towers"] == ["text", "image"]
    assert f"hf:chinese_clip (folder {ZH_MODEL.resolve()}" in run_cli("status", "--db", zh_library.db).stdout


def test_a_new_process_queries_without_torch_or_transformers(zh_library: IndexedLibrary) -> None:
    code = (
        "import sys\nfrom clipsearch.cli import app\n"
        "try:\n    app(['query', '指向左边的箭头', '--db', sys.argv[1], '-f', 'json', '-n', '3'])\n"
        "except SystemExit as done:\n    assert done.code == 0, done.code\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'open_clip') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(zh_library.db)], cwd=REPO, timeout=120,
                          capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "CLIPSEARCH_NO_SERVER": "1",
                                                               "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr
    first = zh_library.photo(json.loads(done.stdout)[0]["path"]).scene.main
    assert (first.kind, first.direction) == ("arrow", "left")
    in_process = json.loads(run_cli("query", "指向左边的箭头", "--db", zh_library.db, "-f", "json", "-n", "3").stdout)
    assert json.loads(done.stdout) == in_process


def test_similar_works_with_the_model(zh_library: IndexedLibrary, tmp_path: Path) -> None:
    photo = next(p for p in zh_library.photos if p.format == "jpeg")
    indexed = json.loads(run_cli("similar", photo.path, "--db", zh_library.db, "-n", "3", "-f", "json").stdout)
    assert len(indexed) == 3 and all(r["path"] != str(photo.path) for r in indexed)
    outside = tmp_path / "copy.png"  # not indexed, not a byte copy: embedded by the image tower
    from PIL import Image

    Image.open(photo.path).convert("RGB").save(outside)
    embedded = json.loads(run_cli("similar", outside, "--db", zh_library.db, "-n", "1", "-f", "json").stdout)
    assert embedded[0]["path"] == str(photo.path)


def test_another_model_is_refused_and_a_moved_folder_is_recognised(zh_library: IndexedLibrary,
                                                                   tmp_path: Path) -> None:
    db = tmp_path / "db"
    shutil.copytree(zh_library.db, db)
    refused = run_cli("query", "cat", "--db", db, "--model", "ViT-B-32")
    assert refused.exit_code == 2 and "this database was indexed with hf:chinese_clip" in refused.stderr
    moved = tmp_path / "moved-model"
    shutil.copytree(ZH_MODEL, moved)
    accepted = run_cli("index", zh_library.root, "--db", db, "--model", f"hf:{moved}")
    assert accepted.exit_code == 0, accepted.stderr
    assert json.loads(run_cli("status", "--json", "--db", db).stdout)["model_identity"]["checkpoint_path"] == str(
        moved)
    (moved / "model.safetensors").write_bytes(b"not the same weights")
    other = run_cli("index", zh_library.root, "--db", db, "--model", f"hf:{moved}")
    assert other.exit_code == 2 and "this database was indexed with" in other.stderr


def test_a_repository_name_offline_is_one_clear_error(tmp_path: Path) -> None:
    result = run_cli("index", tmp_path, "--db", tmp_path / "db", "--model", "hf:someone/not-in-the-cache")
    assert result.exit_code == 2
    assert result.stderr.startswith("clipsearch: error: could not download hf:someone/not-in-the-cache")
    assert "--model hf:/path/to/folder" in result.stderr and len(result.stderr.splitlines()) == 1


def test_an_open_clip_multilingual_model_works_offline_from_local_folders(photo_library, tmp_path: Path) -> None:
    root, _ = photo_library
    config, weights = tiny_xlm_roberta_open_clip(tmp_path)
    db = tmp_path / "db"
    indexed = run_cli("index", root, "--db", db, "--model", config, "--pretrained", weights)
    assert indexed.exit_code == 0, indexed.stderr
    found = run_cli("query", "un cercle rouge", "--db", db, "-n", "3", "-f", "json")
    assert found.exit_code == 0 and len(json.loads(found.stdout)) == 3
    status = json.loads(run_cli("status", "--json", "--db", db).stdout)["query_model"]
    assert status["state"] == "unavailable" and "tokenizer" in status["reason"]  # queries load torch, and say so


@pytest.mark.parametrize(("build", "towers"), [(tiny_clip, ["text", "image"]), (tiny_siglip, ["text"])])
def test_clip_and_siglip_models_get_a_numpy_query_model_that_answers_as_they_do(build, towers: list[str],
                                                                                photo_library, tmp_path: Path) -> None:
    root, _ = photo_library
    folder, db = build(tmp_path / "model"), tmp_path / "db"
    indexed = run_cli("index", root, "--db", db, "--model", f"hf:{folder}")
    assert indexed.exit_code == 0, indexed.stderr
    status = json.loads(run_cli("status", "--json", "--db", db).stdout)["query_model"]
    assert status["state"] == "ready" and status["towers"] == towers
    queries = "a red circle\nun cercle rouge\nsunset beach\n"
    with_numpy = run_cli("query", "-", "--db", db, "-n", "5", "-f", "json", input=queries).stdout
    shutil.rmtree(db / "query-model")
    (db / "query-model.json").write_text("{}")  # as if never exported: the next query loads the model in torch
    with_torch = run_cli("query", "-", "--db", db, "-n", "5", "-f", "json", input=queries).stdout
    assert [r["path"] for r in json.loads(with_numpy)] == [r["path"] for r in json.loads(with_torch)]
