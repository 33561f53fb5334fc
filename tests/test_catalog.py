"""The catalogue's transactions nest: an inner one is a savepoint, the outermost the one writer's BEGIN IMMEDIATE.

Real SQLite files throughout: what matters is what another connection sees after each commit or rollback.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from clipsearch.errors import CatalogError
from clipsearch.store.catalog import Catalog
from clipsearch.store.connection import Connection
from clipsearch.store.rows import NewFile


class Boom(Exception):
    pass


def _catalog(tmp_path: Path) -> Catalog:
    return Catalog(tmp_path / "db" / "catalog.db", create=True)


def _connect(path: Path, **options: object) -> contextlib.closing[sqlite3.Connection]:
    """Another connection to the catalogue file, closed at the end of the `with`."""
    return contextlib.closing(sqlite3.connect(path, **options))  # type: ignore[arg-type]


def _settings_seen_by_another_connection(catalog: Catalog) -> dict[str, str]:
    with _connect(catalog.path) as other:
        return dict(other.execute("SELECT key, value FROM settings"))


def _photo(name: str, seed: int) -> NewFile:
    vector = np.random.default_rng(seed).standard_normal(8).astype(np.float32)
    return NewFile(f"/photos/{name}.jpg", 100 + seed, 1_000 + seed, f"hash-{name}", 640, 480, None, vector)


def test_an_inner_transaction_that_fails_rolls_back_only_its_own_part(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path)
    with catalog.transaction():
        catalog.settings.set("outer-before", "1")
        with pytest.raises(Boom), catalog.transaction():
            catalog.settings.set("inner", "1")
            raise Boom
        catalog.settings.set("outer-after", "1")
        with catalog.transaction():  # a second inner one, after the first failed, commits with the outer
            catalog.settings.set("inner-ok", "1")
        assert _settings_seen_by_another_connection(catalog).keys().isdisjoint({"outer-before", "inner-ok"})
    seen = _settings_seen_by_another_connection(catalog)
    assert {"outer-before", "outer-after", "inner-ok"} <= seen.keys()
    assert "inner" not in seen
    catalog.close()


def test_an_error_in_the_outer_transaction_rolls_back_everything(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path)
    with catalog.transaction():
        catalog.files.add([_photo("kept", 1)], catalog.next_seq())
    with pytest.raises(Boom), catalog.transaction():
        seq = catalog.next_seq()
        with catalog.transaction():  # released into the outer, so it goes with it
            catalog.files.add([_photo("new", 2)], seq)
            catalog.files.remove(list(catalog.files.ids_of(["/photos/kept.jpg"]).values()), seq)
        catalog.settings.set("outer", "1")
        raise Boom
    assert sorted(catalog.files.ids_of(["/photos/kept.jpg", "/photos/new.jpg"])) == ["/photos/kept.jpg"]
    assert catalog.current_seq() == 1 and "outer" not in _settings_seen_by_another_connection(catalog)
    assert catalog.files.changes_since(0).removed == []
    with catalog.transaction():  # and the connection is ready for the next one
        catalog.settings.set("after", "1")
    assert "after" in _settings_seen_by_another_connection(catalog)
    catalog.close()


def test_prune_tombstones_opens_its_own_transaction_inside_the_callers(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path)
    with catalog.transaction():
        catalog.files.add([_photo("a", 1), _photo("b", 2)], catalog.next_seq())
    with catalog.transaction():
        seq = catalog.next_seq()
        catalog.files.remove(list(catalog.files.ids_of(["/photos/a.jpg"]).values()), seq)
    assert len(catalog.files.changes_since(0).removed) == 1

    with pytest.raises(Boom), catalog.transaction():
        catalog.files.prune_tombstones(seq)  # a savepoint here, not a second BEGIN
        assert catalog.files.changes_since(0).removed == [] and catalog.files.pruned_seq() == seq
        raise Boom
    assert len(catalog.files.changes_since(0).removed) == 1 and catalog.files.pruned_seq() == 0

    with catalog.transaction():
        catalog.files.prune_tombstones(seq)
        catalog.regions.prune_tombstones(seq)
    changes = catalog.files.changes_since(0)
    assert changes.removed == [] and not changes.removals_complete  # a reader older than the prune must look
    assert catalog.files.changes_since(seq).removals_complete
    catalog.files.prune_tombstones(0)  # alone: its own outermost transaction; never lowers how far it pruned
    assert catalog.files.pruned_seq() == seq
    catalog.close()


def test_one_writer_a_second_waits_for_the_outermost_commit(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path)
    second = Catalog(catalog.path)
    order: list[str] = []
    entered = threading.Event()

    def write_from_another_connection() -> None:
        entered.set()
        with second.transaction():  # BEGIN IMMEDIATE waits for the first writer (busy_timeout)
            order.append("second")
            second.settings.set("second", "1")

    with catalog.transaction():
        with catalog.transaction():
            catalog.settings.set("first", "1")
        # The savepoint is released but the write lock is held until the outermost commits: nobody else may write.
        with _connect(catalog.path, timeout=0.05) as impatient, pytest.raises(sqlite3.OperationalError):
            impatient.execute("BEGIN IMMEDIATE")
        with _connect(catalog.path) as reader:  # readers are not blocked, and see only what is committed
            assert "first" not in dict(reader.execute("SELECT key, value FROM settings"))
        thread = threading.Thread(target=write_from_another_connection)
        thread.start()
        entered.wait()
        time.sleep(0.2)
        order.append("first")
    thread.join(timeout=30)
    assert order == ["first", "second"]
    assert {"first", "second"} <= _settings_seen_by_another_connection(catalog).keys()
    second.close()
    catalog.close()


def test_another_threads_transaction_on_the_same_catalog_waits_rather_than_nesting(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path)
    order: list[str] = []
    started = threading.Event()

    def other_thread() -> None:
        started.set()
        with catalog.transaction():
            order.append("other")
            catalog.settings.set("other", "1")

    with pytest.raises(Boom), catalog.transaction():
        catalog.settings.set("mine", "1")
        thread = threading.Thread(target=other_thread)
        thread.start()
        started.wait()
        time.sleep(0.2)
        order.append("mine")
        raise Boom  # rolls back only this thread's work: the other's was not made a savepoint of it
    thread.join(timeout=30)
    assert order == ["mine", "other"]
    seen = _settings_seen_by_another_connection(catalog)
    assert "other" in seen and "mine" not in seen
    catalog.close()


def test_a_catalogue_error_inside_a_nested_transaction_rolls_back_its_part_and_names_the_file(tmp_path: Path,
                                                                                            ) -> None:
    catalog = _catalog(tmp_path)
    with _connect(catalog.path) as other, other:
        other.execute("INSERT INTO settings (key, value) VALUES ('broken', '{')")
    with catalog.transaction():
        catalog.settings.set("kept", "1")
        with pytest.raises(CatalogError, match="is damaged") as caught, catalog.transaction():
            catalog.settings.set("lost", "1")
            catalog.settings.get_json("broken")
        assert str(catalog.path) in str(caught.value)
    seen = _settings_seen_by_another_connection(catalog)
    assert "kept" in seen and "lost" not in seen
    catalog.close()


def test_a_second_writer_that_cannot_get_the_lock_gets_a_catalogue_error(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path)
    with _connect(catalog.path, isolation_level=None, check_same_thread=False) as holder:
        holder.execute("BEGIN EXCLUSIVE")
        catalog.settings.get("seq")  # WAL: reading goes on while another connection writes
        time_out = threading.Timer(0.3, lambda: holder.execute("ROLLBACK"))
        with _connect(catalog.path, timeout=0.05, isolation_level=None) as impatient, \
                pytest.raises(CatalogError, match="locked by another program"), \
                Connection(impatient, catalog.path).transaction():
            pass
        time_out.start()
        with catalog.transaction():  # waits (busy_timeout) for the holder to let go
            catalog.settings.set("mine", "1")
        time_out.join()
    assert "mine" in _settings_seen_by_another_connection(catalog)
    catalog.close()


def test_the_hash_reader_finds_committed_rows_from_worker_threads(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path)
    with catalog.transaction():
        catalog.files.add([_photo("a", 1)], catalog.next_seq())
    reader = catalog.hash_reader()
    found: list[list[int]] = []
    with catalog.transaction():
        catalog.files.add([_photo("b", 2)], catalog.next_seq())
        worker = threading.Thread(target=lambda: found.extend([reader.ids_with_hash("hash-a"),
                                                               reader.ids_with_hash("hash-b")]))
        worker.start()
        worker.join()
    assert found == [list(catalog.files.ids_of(["/photos/a.jpg"]).values()), []]  # b was not committed yet
    assert reader.ids_with_hash("hash-b") == list(catalog.files.ids_of(["/photos/b.jpg"]).values())
    assert catalog.hash_reader(staged=True).ids_with_hash("hash-a") == []
    reader.close()
    catalog.close()
