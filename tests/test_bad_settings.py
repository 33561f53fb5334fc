"""Settings that cannot be used (prompt templates, environment variables): one error line naming them, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import IndexedLibrary, TinyModel, model_args, one_error_line, run_cli, write_photos


@pytest.mark.parametrize("template", ["{} and {}", "{}}", "a {x}", "{0}"])
def test_a_template_that_cannot_take_one_label_is_a_usage_error(template: str,
                                                                indexed_library: IndexedLibrary) -> None:
    result = run_cli("classify", indexed_library.photos[0].path, "--labels", "cat,dog", "--template", template,
                     "--db", indexed_library.db)
    one_error_line(result, "--template", template)


def test_a_vocabulary_template_that_cannot_take_one_label_is_a_usage_error(indexed_library: IndexedLibrary,
                                                                            tmp_path: Path) -> None:
    vocabulary = tmp_path / "words.txt"
    vocabulary.write_text("[things]\ntemplates = a photo of {} and {}\ncat\ndog\n")
    db = tmp_path / "db"
    import shutil

    shutil.copytree(indexed_library.db, db)
    one_error_line(run_cli("tag", "--vocabulary", vocabulary, "--db", db), "--vocabulary", "exactly one {}")


@pytest.mark.parametrize("value", ["abc", "nan", "inf", "-1"])
def test_a_bad_thumbnail_cache_size_is_a_usage_error(value: str, indexed_library: IndexedLibrary,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIPSEARCH_THUMBNAIL_CACHE_MB", value)
    one_error_line(run_cli("status", "--db", indexed_library.db), f"CLIPSEARCH_THUMBNAIL_CACHE_MB={value}")


@pytest.mark.parametrize("name", ["CLIPSEARCH_OPENVINO_THREADS", "CLIPSEARCH_OPENVINO_MIN_COSINE"])
def test_a_bad_openvino_setting_is_a_usage_error(name: str, test_model: TinyModel, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("openvino")
    monkeypatch.setenv(name, "abc")
    write_photos(tmp_path / "photos", 2, seed=14)
    result = run_cli("index", tmp_path / "photos", "--db", tmp_path / "db", *model_args(test_model),
                     "--engine", "openvino")
    assert result.exit_code == 2, result.stderr  # (the min cosine is read once the tower is converted)
    assert result.stderr.splitlines()[-1].startswith(f"clipsearch: error: {name}=abc: "), result.stderr
    assert "internal error" not in result.stderr and "embedding with" not in result.stderr
