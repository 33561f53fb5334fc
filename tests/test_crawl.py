from __future__ import annotations

import os
from pathlib import Path

import pytest

from clipsearch.errors import UsageError
from clipsearch.indexing.crawl import CrawlOptions, CrawlResult, crawl


def touch(path: Path, content: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def found(result: CrawlResult, root: Path) -> set[str]:
    """Found files as paths relative to root, for readable assertions."""
    base = os.path.realpath(root)
    return {os.path.relpath(f.path, base) for f in result.files}


def test_only_image_extensions_are_candidates(tmp_path: Path) -> None:
    for name in ["a.jpg", "b.jpeg", "c.jpe", "d.png", "e.webp", "f.gif", "g.bmp", "h.tif", "i.tiff", "j.heic",
                 "k.heif", "l.avif", "notes.txt", "noext", "photo.jpg.bak", "movie.mp4"]:
        touch(tmp_path / name)
    result = crawl([tmp_path])
    assert found(result, tmp_path) == {"a.jpg", "b.jpeg", "c.jpe", "d.png", "e.webp", "f.gif", "g.bmp", "h.tif",
                                       "i.tiff", "j.heic", "k.heif", "l.avif"}
    assert result.problems == ()


def test_extensions_are_case_insensitive(tmp_path: Path) -> None:
    for name in ["A.JPG", "b.PnG", "c.HEIC", "d.Jpeg"]:
        touch(tmp_path / name)
    assert found(crawl([tmp_path]), tmp_path) == {"A.JPG", "b.PnG", "c.HEIC", "d.Jpeg"}


def test_files_carry_size_and_mtime_and_come_sorted(tmp_path: Path) -> None:
    touch(tmp_path / "z.jpg", b"12345")
    touch(tmp_path / "sub" / "a.png", b"1")
    os.utime(tmp_path / "z.jpg", ns=(1_500_000_000_123_456_789, 1_500_000_000_123_456_789))
    result = crawl([tmp_path])
    paths = [f.path for f in result.files]
    assert paths == sorted(paths)
    z = next(f for f in result.files if f.path.endswith("z.jpg"))
    assert (z.size, z.mtime_ns) == (5, 1_500_000_000_123_456_789)
    assert os.path.isabs(z.path)
    assert result.roots == (os.path.realpath(tmp_path),)


def test_hidden_files_and_folders_are_skipped_unless_asked(tmp_path: Path) -> None:
    touch(tmp_path / "seen.jpg")
    touch(tmp_path / ".hidden.jpg")
    touch(tmp_path / ".cache" / "thumb.jpg")
    assert found(crawl([tmp_path]), tmp_path) == {"seen.jpg"}
    everything = crawl([tmp_path], CrawlOptions(include_hidden=True))
    assert found(everything, tmp_path) == {"seen.jpg", ".hidden.jpg", ".cache/thumb.jpg"}


def test_a_root_is_never_hidden(tmp_path: Path) -> None:
    root = tmp_path / ".photos"
    touch(root / "a.jpg")
    assert found(crawl([root]), root) == {"a.jpg"}


def test_a_file_root_is_included_whatever_its_extension(tmp_path: Path) -> None:
    named = touch(tmp_path / "scan.dat")
    result = crawl([named])
    assert [f.path for f in result.files] == [os.path.realpath(named)]


def test_missing_root_is_a_usage_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(UsageError, match="no such file or directory") as caught:
        crawl([missing])
    assert str(missing) in str(caught.value)


def test_a_root_that_is_a_symlink_is_followed_and_resolved(tmp_path: Path) -> None:
    real = tmp_path / "real"
    touch(real / "a.jpg")
    link = tmp_path / "link"
    link.symlink_to(real)
    result = crawl([link])
    assert result.roots == (os.path.realpath(real),)
    assert [f.path for f in result.files] == [os.path.join(os.path.realpath(real), "a.jpg")]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("thumbs", {"keep.jpg", "2019/raw/r.jpg", "2019/cooked/c.jpg", "x/cache/y.jpg", "anim.gif"}),
        ("*.gif", {"keep.jpg", "thumbs/t.jpg", "2019/raw/r.jpg", "2019/cooked/c.jpg", "x/cache/y.jpg"}),
        ("2019/raw", {"keep.jpg", "thumbs/t.jpg", "2019/cooked/c.jpg", "x/cache/y.jpg", "anim.gif"}),
        ("*/cache/*", {"keep.jpg", "thumbs/t.jpg", "2019/raw/r.jpg", "2019/cooked/c.jpg", "anim.gif"}),
        ("*.GIF", {"keep.jpg", "thumbs/t.jpg", "2019/raw/r.jpg", "2019/cooked/c.jpg", "x/cache/y.jpg", "anim.gif"}),
    ],
)
def test_exclude_matches_name_relative_path_or_absolute_path(tmp_path: Path, pattern: str, expected: set[str]) -> None:
    for name in ["keep.jpg", "thumbs/t.jpg", "2019/raw/r.jpg", "2019/cooked/c.jpg", "x/cache/y.jpg", "anim.gif"]:
        touch(tmp_path / name)
    assert found(crawl([tmp_path], CrawlOptions(excludes=(pattern,))), tmp_path) == expected


def test_exclude_by_absolute_path(tmp_path: Path) -> None:
    touch(tmp_path / "a" / "one.jpg")
    touch(tmp_path / "b" / "two.jpg")
    pattern = os.path.join(os.path.realpath(tmp_path), "a")
    assert found(crawl([tmp_path], CrawlOptions(excludes=(pattern,))), tmp_path) == {"b/two.jpg"}


def make_symlink_tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    touch(root / "own.jpg")
    touch(outside / "far.jpg")
    (root / "dirlink").symlink_to(outside)
    (root / "filelink.jpg").symlink_to(outside / "far.jpg")
    return root


def test_symlinks_are_skipped_by_default(tmp_path: Path) -> None:
    root = make_symlink_tree(tmp_path)
    (root / "broken.jpg").symlink_to(tmp_path / "gone.jpg")
    result = crawl([root])
    assert found(result, root) == {"own.jpg"}
    assert result.problems == ()


def test_following_symlinks_finds_targets_once_by_resolved_path(tmp_path: Path) -> None:
    root = make_symlink_tree(tmp_path)
    result = crawl([root], CrawlOptions(follow_symlinks=True))
    far = os.path.realpath(tmp_path / "outside" / "far.jpg")
    assert [f.path for f in result.files] == sorted([os.path.realpath(root / "own.jpg"), far])
    assert result.problems == ()


def test_symlink_loop_is_reported_once_and_does_not_hang(tmp_path: Path) -> None:
    root = tmp_path / "root"
    touch(root / "deep" / "a.jpg")
    (root / "deep" / "up").symlink_to(root)
    (root / "self").symlink_to(root / "self")
    result = crawl([root], CrawlOptions(follow_symlinks=True))
    assert found(result, root) == {"deep/a.jpg"}
    loops = [p for p in result.problems if p.reason == "symlink loop"]
    assert sorted(p.path for p in loops) == sorted([str(root / "deep" / "up"), str(root / "self")])


def test_broken_symlink_is_a_problem_when_following(tmp_path: Path) -> None:
    root = tmp_path / "root"
    touch(root / "ok.jpg")
    (root / "broken.jpg").symlink_to(tmp_path / "gone.jpg")
    result = crawl([root], CrawlOptions(follow_symlinks=True))
    assert found(result, root) == {"ok.jpg"}
    assert [(p.path, p.reason) for p in result.problems] == [(str(root / "broken.jpg"), "broken symlink")]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can list any folder")
def test_unlistable_folder_is_reported_and_the_crawl_goes_on(tmp_path: Path) -> None:
    touch(tmp_path / "ok.jpg")
    locked = tmp_path / "locked"
    touch(locked / "secret.jpg")
    locked.chmod(0)
    try:
        result = crawl([tmp_path])
    finally:
        locked.chmod(0o755)
    assert found(result, tmp_path) == {"ok.jpg"}
    assert result.unreadable_dirs == (str(locked),)
    assert [(p.path, p.reason) for p in result.problems] == [(str(locked), "permission denied")]


def test_folder_too_deep_to_list_is_unreadable_and_the_crawl_goes_on(tmp_path: Path) -> None:
    # A path past PATH_MAX cannot be listed even by root, so this runs where chmod 000 cannot.
    touch(tmp_path / "ok.jpg")
    fd = os.open(tmp_path, os.O_RDONLY)
    depth = 0
    try:
        while depth * 251 < 4200:
            os.mkdir("d" * 250, dir_fd=fd)
            child = os.open("d" * 250, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = child
            depth += 1
    finally:
        os.close(fd)
    result = crawl([tmp_path])
    assert found(result, tmp_path) == {"ok.jpg"}
    assert len(result.unreadable_dirs) == 1
    assert result.unreadable_dirs[0].startswith(str(tmp_path) + "/ddd")
    assert [p.path for p in result.problems] == list(result.unreadable_dirs)


AWKWARD_NAMES = ["with space.jpg", "new\nline.jpg", "-leading-dash.jpg", "quote's \"here\".jpg", "café 東京.jpg"]


def test_awkward_names_are_found_and_readable(tmp_path: Path) -> None:
    for name in AWKWARD_NAMES:
        touch(tmp_path / name, name.encode())
    non_utf8 = os.path.join(os.fsencode(tmp_path), b"caf\xe9.jpg")  # Latin-1 é: invalid UTF-8
    with open(non_utf8, "wb") as handle:
        handle.write(b"latin1")
    result = crawl([tmp_path])
    names = {os.path.basename(f.path) for f in result.files}
    assert names == {*AWKWARD_NAMES, os.fsdecode(b"caf\xe9.jpg")}
    for f in result.files:
        with open(f.path, "rb") as handle:
            assert len(handle.read()) == f.size
    assert os.fsencode(next(f.path for f in result.files if "\udce9" in f.path)) == non_utf8


def test_overlapping_and_repeated_roots_give_no_duplicates(tmp_path: Path) -> None:
    touch(tmp_path / "top.jpg")
    touch(tmp_path / "sub" / "inner.jpg")
    touch(tmp_path / "sub" / ".hidden" / "named.jpg")
    result = crawl([tmp_path / "sub", tmp_path, tmp_path / "sub", tmp_path / "sub" / ".hidden"])
    assert sorted(found(result, tmp_path)) == ["sub/.hidden/named.jpg", "sub/inner.jpg", "top.jpg"]
    assert len(result.roots) == 3
