"""Walk the folders the user names and list the files that may be images."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from clipsearch.errors import UsageError, describe_os_error

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic", ".heif", ".avif"}
)

NOT_REGULAR = "not a regular file"


@dataclass(frozen=True)
class CrawlOptions:
    include_hidden: bool = False
    excludes: tuple[str, ...] = ()
    follow_symlinks: bool = False


@dataclass(frozen=True)
class FoundFile:
    path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class CrawlProblem:
    path: str
    reason: str


@dataclass(frozen=True)
class CrawlResult:
    roots: tuple[str, ...]
    files: tuple[FoundFile, ...]
    problems: tuple[CrawlProblem, ...]
    # The indexer must not treat catalogue entries under these as deleted: we could not see them.
    unreadable_dirs: tuple[str, ...]


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def crawl(roots: Sequence[str | os.PathLike[str]], options: CrawlOptions = CrawlOptions()) -> CrawlResult:
    """List candidate image files under roots; problems are collected, never raised (except a missing root)."""
    resolved = _resolve_roots(roots)
    acc = _Accumulator()
    for root in resolved:
        # Each root is walked on its own: a nested root the user names explicitly is "never hidden" and has
        # its own relative paths for --exclude, so pruning it via the outer root would be wrong.
        _crawl_root(root, options, acc)
    return CrawlResult(
        roots=tuple(resolved),
        files=tuple(acc.files[path] for path in sorted(acc.files)),
        problems=tuple(dict.fromkeys(acc.problems)),
        unreadable_dirs=tuple(sorted(acc.unreadable_dirs)),
    )


@dataclass
class _Accumulator:
    files: dict[str, FoundFile] = field(default_factory=dict)
    problems: list[CrawlProblem] = field(default_factory=list)
    unreadable_dirs: set[str] = field(default_factory=set)

    def add_file(self, path: str, st: os.stat_result) -> None:
        self.files.setdefault(path, FoundFile(path=path, size=st.st_size, mtime_ns=st.st_mtime_ns))

    def problem(self, path: str, reason: str) -> None:
        self.problems.append(CrawlProblem(path=path, reason=reason))


def _resolve_roots(roots: Sequence[str | os.PathLike[str]]) -> list[str]:
    resolved: list[str] = []
    for root in roots:
        # fsdecode keeps non-UTF-8 bytes as surrogate escapes, so they round-trip to the same file.
        name = os.fsdecode(os.fspath(root))
        real = os.path.realpath(os.path.abspath(name))
        try:
            os.stat(real)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                raise UsageError(f"{name}: no such file or directory") from None
            raise UsageError(f"{name}: {describe_os_error(exc)}") from None
        if real not in resolved:
            resolved.append(real)
    return resolved


def _crawl_root(root: str, options: CrawlOptions, acc: _Accumulator) -> None:
    try:
        st = os.stat(root)
    except OSError as exc:
        acc.problem(root, describe_os_error(exc))
        return
    if stat.S_ISREG(st.st_mode):
        acc.add_file(root, st)  # the user named it, so its extension does not matter
        return
    if not stat.S_ISDIR(st.st_mode):
        acc.problem(root, "not a regular file or directory")
        return
    walker = _Walker(root, options, acc)
    walker.walk(st)


class _Walker:
    """Iterative depth-first walk of one root (no recursion limit on deep trees)."""

    def __init__(self, root: str, options: CrawlOptions, acc: _Accumulator) -> None:
        self.root = root
        self.options = options
        self.acc = acc
        self.visited: set[tuple[int, int]] = set()

    def walk(self, root_stat: os.stat_result) -> None:
        self.visited.add((root_stat.st_dev, root_stat.st_ino))
        # (walked path, path relative to root, whether a symlink was followed to get here)
        stack: list[tuple[str, str, bool]] = [(self.root, "", False)]
        while stack:
            dir_path, rel_dir, via_link = stack.pop()
            subdirs = list(self._scan(dir_path, rel_dir, via_link))
            stack.extend(reversed(subdirs))

    def _scan(self, dir_path: str, rel_dir: str, via_link: bool) -> Iterator[tuple[str, str, bool]]:
        try:
            with os.scandir(dir_path) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            shown = os.path.realpath(dir_path) if via_link else dir_path
            self.acc.problem(shown, describe_os_error(exc))
            self.acc.unreadable_dirs.add(shown)
            return
        for entry in entries:
            name = entry.name
            if not self.options.include_hidden and name.startswith("."):
                continue
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if self._excluded(name, rel, entry.path):
                continue
            try:
                if entry.is_symlink():
                    if self.options.follow_symlinks:
                        yield from self._follow(entry, dir_path, rel)
                elif entry.is_dir(follow_symlinks=False):
                    if self.options.follow_symlinks:
                        # A link may lead back here later; knowing this folder lets us spot that as a loop.
                        st = entry.stat(follow_symlinks=False)
                        key = (st.st_dev, st.st_ino)
                        if key in self.visited:
                            continue  # already walked through a symlink that leads here
                        self.visited.add(key)
                    yield (entry.path, rel, via_link)
                elif not is_image_name(name):
                    continue
                elif entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    # Below a followed symlink the walked path is not the resolved one; elsewhere it already is.
                    self.acc.add_file(os.path.realpath(entry.path) if via_link else entry.path, st)
                else:
                    # A FIFO, socket or device named like a photo: say why it is left out, not just drop it.
                    self.acc.problem(entry.path, NOT_REGULAR)
            except FileNotFoundError:
                continue  # vanished between listing and stat
            except OSError as exc:
                # Listable but not searchable (r without x): the file exists, so its catalogue entry must live on.
                self.acc.problem(entry.path, describe_os_error(exc))
                self.acc.unreadable_dirs.add(os.path.realpath(dir_path) if via_link else dir_path)

    def _follow(self, entry: os.DirEntry[str], dir_path: str, rel: str) -> Iterator[tuple[str, str, bool]]:
        try:
            st = entry.stat(follow_symlinks=True)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                self.acc.problem(entry.path, "symlink loop")
            elif exc.errno in (errno.ENOENT, errno.ENOTDIR):
                self.acc.problem(entry.path, "broken symlink")
            else:
                self.acc.problem(entry.path, describe_os_error(exc))
            return
        if stat.S_ISDIR(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if key in self.visited:
                target = os.path.realpath(entry.path)
                here = os.path.realpath(dir_path)
                if here == target or here.startswith(target.rstrip(os.sep) + os.sep):
                    self.acc.problem(entry.path, "symlink loop")
                # Otherwise it is a second way into a folder already walked: nothing new to find there.
                return
            self.visited.add(key)
            yield (entry.path, rel, True)
        elif not is_image_name(entry.name):
            return
        elif stat.S_ISREG(st.st_mode):
            self.acc.add_file(os.path.realpath(entry.path), st)
        else:
            self.acc.problem(entry.path, NOT_REGULAR)

    def _excluded(self, name: str, rel: str, path: str) -> bool:
        return any(
            fnmatchcase(name, pattern) or fnmatchcase(rel, pattern) or fnmatchcase(path, pattern)
            for pattern in self.options.excludes
        )
