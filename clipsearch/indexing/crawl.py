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

# Files that are photos or footage but not images clipsearch decodes: counted, so that "indexed 0" is explained.
RAW_EXTENSIONS: frozenset[str] = frozenset(
    {".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".dng", ".orf", ".rw2", ".raf", ".pef", ".srw",
     ".3fr", ".erf", ".kdc", ".mrw", ".raw", ".rwl", ".x3f", ".iiq"}
)
VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {".mp4", ".mov", ".m4v", ".avi", ".mkv", ".mts", ".m2ts", ".3gp", ".wmv", ".webm", ".mpg", ".mpeg", ".insv"}
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
    root: str = ""  # the root whose crawl found it


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
    # Per root, the files and folders outside it that followed symlinks led to: they belong to that root.
    linked: dict[str, tuple[str, ...]] = field(default_factory=dict)
    ignored: dict[str, int] = field(default_factory=dict)  # "RAW", "video": files of those kinds passed over


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def ignored_kind(name: str) -> str | None:
    extension = os.path.splitext(name)[1].lower()
    return "RAW" if extension in RAW_EXTENSIONS else "video" if extension in VIDEO_EXTENSIONS else None


def crawl(roots: Sequence[str | os.PathLike[str]], options: CrawlOptions = CrawlOptions()) -> CrawlResult:
    """List candidate image files under roots, all with the same options."""
    return crawl_roots([(root, options) for root in resolve_roots(roots)])


def crawl_roots(roots: Sequence[tuple[str, CrawlOptions]]) -> CrawlResult:
    """List candidate image files under resolved roots, each with its own options; problems are collected,
    never raised."""
    acc = _Accumulator()
    for root, options in roots:
        # Each root is walked on its own: a nested root the user names explicitly is "never hidden" and has
        # its own relative paths for --exclude, so pruning it via the outer root would be wrong.
        acc.root = root
        _crawl_root(root, options, acc)
    return CrawlResult(
        roots=tuple(root for root, _ in roots),
        files=tuple(acc.files[path] for path in sorted(acc.files)),
        problems=tuple(dict.fromkeys(acc.problems)),
        unreadable_dirs=tuple(sorted(acc.unreadable_dirs)),
        linked={root: tuple(sorted(targets)) for root, targets in acc.linked.items()},
        ignored=dict(acc.ignored),
    )


@dataclass
class _Accumulator:
    files: dict[str, FoundFile] = field(default_factory=dict)
    problems: list[CrawlProblem] = field(default_factory=list)
    unreadable_dirs: set[str] = field(default_factory=set)
    linked: dict[str, set[str]] = field(default_factory=dict)
    ignored: dict[str, int] = field(default_factory=dict)
    root: str = ""  # the root being walked

    def add_link_target(self, target: str) -> None:
        if target != self.root and not target.startswith(self.root.rstrip(os.sep) + os.sep):
            self.linked.setdefault(self.root, set()).add(target)

    def ignore(self, name: str) -> None:
        kind = ignored_kind(name)
        if kind is not None:
            self.ignored[kind] = self.ignored.get(kind, 0) + 1

    def add_file(self, path: str, st: os.stat_result) -> None:
        self.files.setdefault(path, FoundFile(path=path, size=st.st_size, mtime_ns=st.st_mtime_ns, root=self.root))

    def problem(self, path: str, reason: str) -> None:
        self.problems.append(CrawlProblem(path=path, reason=reason))


def resolve_roots(roots: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Absolute paths with symlinks resolved, in order, without repeats; a UsageError for one that is not there."""
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
            try:
                if self._excluded(entry, rel):
                    continue
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
                    self.acc.ignore(name)
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
            self.acc.add_link_target(os.path.realpath(entry.path))
            yield (entry.path, rel, True)
        elif not is_image_name(entry.name):
            self.acc.ignore(entry.name)
            return
        elif stat.S_ISREG(st.st_mode):
            target = os.path.realpath(entry.path)
            self.acc.add_link_target(target)
            self.acc.add_file(target, st)
        else:
            self.acc.problem(entry.path, NOT_REGULAR)

    def _excluded(self, entry: os.DirEntry[str], rel: str) -> bool:
        # A pattern ending in "/" names folders only ("Drawings/"): the slash would never match a name itself.
        for pattern in self.options.excludes:
            if pattern.endswith("/"):
                if not _is_folder(entry, self.options.follow_symlinks):
                    continue
                pattern = pattern.rstrip("/")
            if fnmatchcase(entry.name, pattern) or fnmatchcase(rel, pattern) or fnmatchcase(entry.path, pattern):
                return True
        return False


def _is_folder(entry: os.DirEntry[str], follow_symlinks: bool) -> bool:
    try:
        return entry.is_dir(follow_symlinks=follow_symlinks)
    except OSError:  # a symlink loop, say: reported when the walk reaches it, not here
        return False
