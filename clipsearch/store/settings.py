"""The `settings` table: small named values (the model identity, the change sequence, switches in progress)."""

from __future__ import annotations

import json

from clipsearch.errors import CatalogError
from clipsearch.store.connection import Repository
from clipsearch.store.sqlite_guard import guarded


class SettingsRepository(Repository):
    """Key -> text, and key -> JSON object, in `settings`."""

    @guarded
    def get(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    @guarded
    def set(self, key: str, value: str) -> None:
        self._conn.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, value))

    @guarded
    def get_json(self, key: str) -> dict | None:
        value = self.get(key)
        if not value:
            return None
        try:
            return json.loads(value)
        except ValueError as error:
            raise CatalogError(f"the catalogue {self.path} is damaged (setting {key!r} is not JSON): restore it "
                               "from a backup, or move it away and run `clipsearch index` again") from error

    @guarded
    def set_json(self, key: str, value: dict) -> None:
        self.set(key, json.dumps(value, sort_keys=True))

    @guarded
    def get_int(self, key: str) -> int:
        """A number kept as text (a change sequence number); 0 when unset."""
        return int(self.get(key) or 0)
