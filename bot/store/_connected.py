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
