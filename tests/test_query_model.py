"""The numpy copy of the model: same tokens, same embeddings, and a query process that never imports torch."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import TINY_VIT, IndexedLibrary, TinyModel, load_encoder, model_args, run_cli, shows, status
from PIL import Image

from clipsearch.imaging.decode import decode_image, read_file
from clipsearch.imaging.pixels import prepare_pixels
from clipsearch.models.identity import ModelSpec, identify
from clipsearch.models.query_model import QueryModel, settings_digest
from clipsearch.models.tokenizer import ClipTokenizer

REPO = Path(__file__).resolve().parent.parent


def test_tokenizer_gives_open_clip_s_token_ids() -> None:
    import open_clip
    from open_clip.tokenizer import default_bpe

    theirs = open_clip.get_tokenizer("ViT-B-32")
    ours = ClipTokenizer(Path(default_bpe()), 77)
    texts = ["a photo of a dog", "Sunset over the BEACH!!", "", "   tabs\tand\nnewlines  ", "it's 3.14 o'clock",
             "&amp;lt;b&amp;gt; escaped html", "café naïve 東京 🌅", "Ã©tÃ© (mojibake)", "a\x1b[31m red\x00 one",
             "<start_of_text> in the text <end_of_text>", "long " * 100, "ﬁne ligatures and ｗｉｄｅ letters"]
    rng = random.Random(20261123)
    alphabet = "abcdefghijklmnopqrstuvwxyz ÄÖÜéèñ0123456789.,;:!?'\"-_()[]<>/\\@#&%*+=~`|😀中文한국어\t\n"
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 90))) for _ in range(300)]
    mismatched = [t for t in texts if ours(t) != theirs([t])[0].tolist()]
    assert not mismatched, mismatched[:3]


def test_indexing_leaves_a_copy_and_a_cold_query_imports_no_torch(indexed_library: IndexedLibrary) -> None:
    manifest = json.loads((indexed_library.db / "query-model" / "manifest.json").read_text())
    assert "text" in manifest and "image" not in manifest  # the test model's image tower is a ResNet
    code = (
        "import sys\nfrom clipsearch.cli import app\n"
        "try:\n    app(['query', 'a yellow triangle', '--db', sys.argv[1], '-f', 'json'])\n"
        "except SystemExit as done:\n    assert done.code == 0, done.code\n"
        "heavy = sorted(m for m in ('torch', 'open_clip', 'torchvision', 'transformers') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(indexed_library.db)], cwd=REPO, timeout=60,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert len(results) == 10 and shows(indexed_library.photo(results[0]["path"]), "yellow", "triangle")
    assert "text tower in numpy: queries skip torch" in run_cli("status", "--db", indexed_library.db).stdout
    assert json.loads(run_cli("status", "--json", "--db", indexed_library.db).stdout)["query_model"]["towers"] == [
        "text"]


def test_a_vit_copy_embeds_texts_and_images_like_the_model(random_vit: TinyModel, photo_library,
                                                            tmp_path: Path) -> None:
    _, photos = photo_library
    identity = identify(ModelSpec(str(random_vit.config), str(random_vit.checkpoint)))
    # `auto` quantises the image tower to int8 on a CPU: the copy must be taken from the fp32 weights before that.
    quantised = load_encoder(identity, "auto", query_model_to=tmp_path / "copy")
    assert quantised.precision == "int8"
    exact = load_encoder(identity)
    copy = QueryModel.open(tmp_path / "copy", identity)
    assert copy is not None and copy.embeds_images
    texts = ["a red circle", "an arrow pointing left", "un café à Paris", "word " * 40]
    assert np.min(np.sum(copy.embed_texts(texts) * exact.embed_texts(texts), axis=1)) > 0.9999
    size = exact.preprocessing.image_size
    pixels = np.stack([prepare_pixels(decode_image(read_file(str(p.path)), target_size=size).image, size)
                       for p in photos[:8]])
    assert np.min(np.sum(copy.embed_pixels(pixels) * exact.embed_pixels(pixels), axis=1)) > 0.9999


def test_similar_on_a_new_file_answers_the_same_through_the_copy(random_vit: TinyModel, photo_library,
                                                                   tmp_path: Path) -> None:
    root, photos = photo_library
    db = tmp_path / "db"
    assert run_cli("index", root, "--db", db, *model_args(random_vit)).exit_code == 0
    outside = tmp_path / "outside.png"  # the same picture in other bytes: not a copy whose stored vector is reused
    Image.open(photos[3].path).save(outside)
    through_copy = json.loads(run_cli("similar", outside, "--db", db, "-f", "json").stdout)
    shutil.rmtree(db / "query-model")
    through_torch = json.loads(run_cli("similar", outside, "--db", db, "-f", "json").stdout)
    assert [r["path"] for r in through_copy] == [r["path"] for r in through_torch]
    assert np.allclose([r["score"] for r in through_copy], [r["score"] for r in through_torch], atol=1e-4)
    assert (db / "query-model" / "manifest.json").is_file()  # the torch query wrote the copy again


_SETTINGS_EDITS = {  # a setting of the manifest changed, as by hand: each gave other results silently, or crashed
    "eps": lambda m: m["text"].update(eps=1e-1),
    "activation": lambda m: m["text"].update(activation="gelu_tanh" if m["text"]["activation"] != "gelu_tanh"
                                             else "gelu"),
    "activation nope": lambda m: m["text"].update(activation="nope"),
    "no layers": lambda m: m["text"].update(layers=0),
    "context_length": lambda m: m["text"].update(context_length=4),
}


@pytest.mark.parametrize("damage", ["overwritten", "truncated", "another model", "garbage manifest",
                                    "vocabulary emptied", "vocabulary edited", "manifest deleted",
                                    "an older manifest", *_SETTINGS_EDITS])
def test_a_damaged_or_foreign_copy_is_ignored_and_replaced(indexed_library: IndexedLibrary, tmp_path: Path,
                                                           damage: str) -> None:
    db = tmp_path / "db"
    shutil.copytree(indexed_library.db, db)
    expected = json.loads(run_cli("query", "a red circle", "--db", db, "-f", "json").stdout)
    folder = db / "query-model"
    weights, manifest, vocabulary = folder / "weights.bin", folder / "manifest.json", folder / "bpe_merges.txt"
    data = json.loads(manifest.read_text())
    if damage == "overwritten":
        with weights.open("r+b") as handle:
            handle.write(b"\x7f" * 4096)  # same size, garbage at the start
    elif damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif damage == "another model":  # a sound copy, of another model
        data["identity"]["checkpoint_sha256"] = "0" * 64
        data["digest"] = settings_digest(data)
        manifest.write_text(json.dumps(data))
    elif damage == "garbage manifest":
        manifest.write_text("{not json")
    elif damage == "vocabulary emptied":
        vocabulary.write_bytes(b"")
    elif damage == "vocabulary edited":  # the same size, two merges swapped: other tokens
        lines = vocabulary.read_bytes().split(b"\n")
        lines[1], lines[2] = lines[2], lines[1]
        vocabulary.write_bytes(b"\n".join(lines))
    elif damage == "manifest deleted":
        manifest.unlink()
    elif damage == "an older manifest":  # as round 2 wrote it: the weights' fingerprint, nothing else checked
        data = {k: v for k, v in data.items() if k not in ("files", "digest")}
        data.update(version=3, fingerprint=json.loads(manifest.read_text())["files"]["weights.bin"])
        manifest.write_text(json.dumps(data))
    else:
        _SETTINGS_EDITS[damage](data)
        manifest.write_text(json.dumps(data))
    assert status(db)["query_model"]["state"] == ("missing" if damage == "another model" else "damaged")
    result = run_cli("query", "a red circle", "--db", db, "-f", "json")
    assert result.exit_code == 0, result.stderr
    answered = json.loads(result.stdout)
    assert [r["path"] for r in answered] == [r["path"] for r in expected]
    assert np.allclose([r["score"] for r in answered], [r["score"] for r in expected], atol=1e-5)
    identity = identify(ModelSpec(*model_args_of(db)))
    assert QueryModel.open(db / "query-model", identity) is not None  # written again by the query that loaded torch
    assert status(db)["query_model"]["state"] == "ready"
    assert json.loads(run_cli("query", "a red circle", "--db", db, "-f", "json").stdout) == answered


def model_args_of(db: Path) -> tuple[str, str]:
    import sqlite3

    with sqlite3.connect(db / "catalog.db") as connection:
        stored = json.loads(connection.execute("SELECT value FROM settings WHERE key = 'model'").fetchone()[0])
    return stored["config_path"], stored["checkpoint_path"]


@pytest.mark.slow
def test_the_default_architecture_exports_both_towers(tmp_path: Path) -> None:
    # An open_clip upgrade that changes ViT-B-32-256's modules must fail here, not quietly make every query load
    # torch. Random weights: the export and its self-check do not depend on their values.
    import open_clip

    from clipsearch.config import DEFAULT_MODEL
    from clipsearch.models.hub import quiet_root_logger
    from clipsearch.models.openclip import _preprocessing
    from clipsearch.models.query_model_export import export_query_model

    with quiet_root_logger():
        model = open_clip.create_model(DEFAULT_MODEL).eval()
        tokenizer = open_clip.get_tokenizer(DEFAULT_MODEL)
    identity = identify(ModelSpec(DEFAULT_MODEL, None))
    report = export_query_model(model, tokenizer, _preprocessing(open_clip, model), identity, tmp_path / "qm")
    assert (report.text, report.image, report.reason) == (True, True, None)
    assert QueryModel.open(tmp_path / "qm", identity) is not None


def test_a_model_without_a_query_model_is_not_tried_again_until_open_clip_changes(photo_library,
                                                                                  tmp_path: Path) -> None:
    import open_clip
    import torch

    # A text tower pooled at its EOS token: open_clip runs it, the numpy query model does not.
    config = tmp_path / "tiny-eos-pool.json"
    config.write_text(json.dumps({**TINY_VIT, "text_cfg": {**TINY_VIT["text_cfg"], "pool_type": "eos"}}))
    open_clip.add_model_config(config)
    torch.manual_seed(1)
    checkpoint = tmp_path / "tiny-eos-pool.pt"
    torch.save(open_clip.create_model("tiny-eos-pool").state_dict(), checkpoint)
    _, photos = photo_library
    folder, db = tmp_path / "photos", tmp_path / "db"
    folder.mkdir()
    shutil.copy2(photos[0].path, folder / "first.jpg")
    assert run_cli("index", folder, "--db", db, "--model", config, "--pretrained", checkpoint).exit_code == 0

    outcome_file = db / "query-model.json"
    outcome = json.loads(outcome_file.read_text())
    assert outcome["text"] is False and "eos" in outcome["reason"]
    assert outcome["software"] == f"open_clip {open_clip.__version__}"
    assert not (db / "query-model").exists()
    status = run_cli("status", "--db", db).stdout
    assert "cannot be made for this model" in status and "queries load torch" in status
    written = outcome_file.stat().st_mtime_ns

    shutil.copy2(photos[1].path, folder / "second.jpg")  # something to embed: the model loads again
    assert "indexed 1," in run_cli("index", folder, "--db", db).stderr
    assert run_cli("query", "a red circle", "--db", db).exit_code == 0
    assert outcome_file.stat().st_mtime_ns == written  # not tried again

    outcome["software"] = "open_clip 0.0.1"  # as if open_clip was upgraded since: worth another try
    outcome_file.write_text(json.dumps(outcome))
    assert run_cli("query", "a red circle", "--db", db).exit_code == 0
    assert json.loads(outcome_file.read_text())["software"] == f"open_clip {open_clip.__version__}"
