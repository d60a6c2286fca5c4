"""What the record mixins use of the store they are mixed into.

`SqliteStore` provides the connection and its transactions; the mixins add SQL
for their own tables on top, and share the one query helper here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

import aiosqlite

__all__ = ["Connected"]


class Connected:
    if TYPE_CHECKING:  # provided by SqliteStore

        @property
        def db(self) -> aiosqlite.Connection: ...

        def transaction(self) -> AbstractAsyncContextManager[aiosqlite.Connection]: ...

    async def _all(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        async with self.db.execute(sql, params) as cur:
            return list(await cur.fetchall())

    async def _hourly_rows(
        self, select_from: str, first_day: int, last_day: int, series_ids: Sequence[int] | None
    ) -> list[sqlite3.Row]:
        """`SELECT ... FROM <table>` rows of days [first_day, last_day] of the given series
        (all when None; none for an empty list), ordered by series, day, hour."""
        sql = f"{select_from} WHERE day BETWEEN ? AND ?"
        params: list[object] = [first_day, last_day]
        if series_ids is not None:
            if not series_ids:
                return []
            sql += f" AND series_id IN ({','.join('?' * len(series_ids))})"
            params += list(series_ids)
        return await self._all(sql + " ORDER BY series_id, day, hour", params)
