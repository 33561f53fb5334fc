"""Zero-shot tags: each file's labels from a vocabulary, and the vocabulary's label vectors."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from clipsearch.store.connection import Repository
from clipsearch.store.rows import decode_path
from clipsearch.store.sqlite_guard import guarded

VOCABULARY_SETTING = "tag_vocabulary"  # labels, groups, templates, the rule, and the model the vectors are for


@dataclass(frozen=True)
class TaggedFile:
    id: int
    path: str
    probability: float


class TagsRepository(Repository):
    """The `tags` and `tag_labels` tables (writers hold the writer lock and a transaction)."""

    @guarded
    def label_vectors(self) -> tuple[list[str], list[int], np.ndarray] | None:
        """(labels, their groups, their vectors) of the tagging vocabulary, or None without one."""
        rows = self._conn.execute("SELECT label, grouping, vector FROM tag_labels ORDER BY position").fetchall()
        if not rows:
            return None
        return [r[0] for r in rows], [r[1] for r in rows], np.stack([np.frombuffer(r[2], np.float32) for r in rows])

    @guarded
    def set_label_vectors(self, labels: Sequence[str], groups: Sequence[int], vectors: np.ndarray) -> None:
        self._conn.execute("DELETE FROM tag_labels")
        self._conn.executemany(
            "INSERT INTO tag_labels (position, label, grouping, vector) VALUES (?, ?, ?, ?)",
            [(n, label, group, np.ascontiguousarray(v, np.float32).tobytes())
             for n, (label, group, v) in enumerate(zip(labels, groups, vectors))])

    @guarded
    def clear(self) -> None:
        self._conn.execute("DELETE FROM tags")

    @guarded
    def add(self, rows: Sequence[tuple[int, str, float]]) -> None:
        """(file id, label, probability) rows; a file's tags for a label are replaced."""
        self._conn.executemany("INSERT OR REPLACE INTO tags (file_id, label, probability) VALUES (?, ?, ?)", rows)

    @guarded
    def remove_of_files(self, file_ids: Iterable[int]) -> None:
        self._conn.executemany("DELETE FROM tags WHERE file_id = ?", [(int(i),) for i in file_ids])

    @guarded
    def replace(self, file_ids: set[int], rows: Sequence[tuple[int, str, float]]) -> None:
        """The tags of these files become `rows`."""
        self.remove_of_files(file_ids)
        self.add(rows)

    @guarded
    def counts(self) -> list[tuple[str, int]]:
        return self._conn.execute("SELECT label, count(*) FROM tags GROUP BY label ORDER BY count(*) DESC, label"
                                  ).fetchall()

    @guarded
    def tagged(self, label: str) -> list[TaggedFile]:
        rows = self._conn.execute(
            "SELECT files.id, files.path, tags.probability FROM tags JOIN files ON files.id = tags.file_id "
            "WHERE tags.label = ? ORDER BY tags.probability DESC, files.path", (label,))
        return [TaggedFile(file_id, decode_path(path), probability) for file_id, path, probability in rows]

    @guarded
    def exists(self, label: str) -> bool:
        return self._conn.execute("SELECT 1 FROM tags WHERE label = ? LIMIT 1", (label,)).fetchone() is not None
