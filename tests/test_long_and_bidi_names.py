"""File names that reach the file system's limit, or that hold bidirectional controls, through the CLI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import TinyModel, model_args, run_cli, write_photos


@pytest.fixture(scope="module")
def odd_names(tmp_path_factory: pytest.TempPathFactory, test_model: TinyModel) -> tuple[Path, Path]:
    """(db, folder): photos named with 253 and 255 bytes, and one with a right-to-left override, indexed."""
    folder = tmp_path_factory.mktemp("odd-names")
    first, second, third = write_photos(folder, 3, seed=25)
    first.rename(folder / ("a" * 249 + ".jpg"))  # 253 bytes: "01-" before it makes 256
    second.rename(folder / ("é" * 125 + "b.jpg"))  # 255 bytes, two to a character
    third.rename(folder / "cat\u202egnp.jpg")
    db = tmp_path_factory.mktemp("odd-names-db") / "db"
    result = run_cli("index", folder, "--db", db, *model_args(test_model))
    assert result.exit_code == 0, result.stderr
    return db, folder


def test_links_to_results_with_the_longest_names_are_shortened_not_an_error(odd_names: tuple[Path, Path],
                                                                              tmp_path: Path) -> None:
    db, folder = odd_names
    links = tmp_path / "links"
    result = run_cli("query", "a photo", "--db", db, "--link-to", links, "-n", "3")
    assert result.exit_code == 0, result.stderr
    names = sorted(os.listdir(links))
    assert len(names) == 3
    for name in names:
        assert len(os.fsencode(name)) <= 255
        assert name[:3] in ("01-", "02-", "03-")
        assert (links / name).resolve().parent == folder.resolve()
    long_ones = [name for name in names if "…" in name]
    assert len(long_ones) == 2 and all(name.endswith(".jpg") for name in long_ones)


def test_a_bidi_override_in_a_name_is_escaped_in_the_table(odd_names: tuple[Path, Path]) -> None:
    db, _ = odd_names
    result = run_cli("query", "a photo", "--db", db, "-f", "table", "-n", "3")
    assert result.exit_code == 0, result.stderr
    assert "\u202e" not in result.stdout
    assert "cat\\u202egnp.jpg" in result.stdout
