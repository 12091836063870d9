"""The system of record: one SQLite file per domain service (database-per-service).

Redis only ever holds copies; this file is where a committed write lives. Queries here are by primary
key or index and take microseconds, so they run on the event loop directly (no thread hop). To make the
value of a cache visible, every query can be slowed by ``latency_ms`` — a "slow core insurance system".
``loads`` counts queries, so a lesson can show how many reads reached the system of record.
"""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .errors import VersionMismatch


class Database:
    def __init__(self, path: Path, schema: str, latency_ms: float = 0.0):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.latency_ms = latency_ms
        self.loads = 0
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self._add_columns_the_schema_gained(schema)
        self.conn.executescript(schema)

    def _add_columns_the_schema_gained(self, schema: str) -> None:
        """Bring a file made by older code up to ``schema``: add every column it lacks (e.g. ``version``).

        ``CREATE TABLE IF NOT EXISTS`` leaves an existing table as it is, so a column added to the schema
        later would never reach a learner's existing file. The schema is built in memory and compared
        with the file, table by table; a new column must have a default (SQLite's rule for ADD COLUMN),
        which existing rows then take. Runs before the schema, whose indexes may name the new columns.
        """
        wanted = sqlite3.connect(":memory:")
        try:
            wanted.executescript(schema)
            tables = [name for (name,) in wanted.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
            for table in tables:
                have = {row[1] for row in self.conn.execute(f"PRAGMA table_info({table})")}
                if not have:
                    continue  # a new table: the schema below creates it whole
                for _cid, column, kind, not_null, default, _pk in wanted.execute(f"PRAGMA table_info({table})"):
                    if column not in have:
                        self.conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}"
                                          + (" NOT NULL" if not_null else "")
                                          + (f" DEFAULT {default}" if default is not None else ""))
        finally:
            wanted.close()

    async def _simulate_latency(self) -> None:
        self.loads += 1
        if self.latency_ms > 0:
            await asyncio.sleep(self.latency_ms / 1000)

    async def fetch_one(self, sql: str, params: tuple = ()) -> dict[str, Any] | None:
        await self._simulate_latency()
        row = self.conn.execute(sql, params).fetchone()
        return dict(row) if row else None

    async def fetch_all(self, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
        await self._simulate_latency()
        return [dict(r) for r in self.conn.execute(sql, params).fetchall()]

    async def scalar(self, sql: str, params: tuple = ()) -> Any:
        await self._simulate_latency()
        row = self.conn.execute(sql, params).fetchone()
        return row[0] if row else None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT: everything inside commits together or not at all.

        No await may happen inside: the block runs start to end on the event loop, so two requests can
        never interleave their statements.
        """
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()


def update_versioned(tx: sqlite3.Connection, table: str, num: int, fields: dict[str, Any],
                     expected_version: int | None = None) -> bool:
    """Inside a transaction: write ``fields`` to one row and bump its ``version``, in one UPDATE.

    With ``expected_version`` (the client's ``If-Match``) the UPDATE is a compare-and-set,
    ``WHERE num = ? AND version = ?``: of two writers that read the same version exactly one matches.
    When no row matched, one look tells "no such row" (False) from "changed since" (VersionMismatch,
    a 412). With no ``fields`` only the check is made and the version stays.
    """
    where, params = "num = ?", [num]
    if expected_version is not None:
        where, params = where + " AND version = ?", [*params, expected_version]
    if fields:
        assignments = "".join(f"{name} = ?, " for name in fields)
        if tx.execute(f"UPDATE {table} SET {assignments}version = version + 1 WHERE {where}",
                      (*fields.values(), *params)).rowcount:
            return True
    return _still_there(tx, table, num, expected_version)


def delete_versioned(tx: sqlite3.Connection, table: str, num: int, expected_version: int | None = None) -> bool:
    """Inside a transaction: delete one row, only at ``expected_version`` if one is given (same rules)."""
    where, params = "num = ?", [num]
    if expected_version is not None:
        where, params = where + " AND version = ?", [*params, expected_version]
    if tx.execute(f"DELETE FROM {table} WHERE {where}", params).rowcount:
        return True
    _still_there(tx, table, num, expected_version)  # there at another version: VersionMismatch
    return False


def _still_there(tx: sqlite3.Connection, table: str, num: int, expected_version: int | None) -> bool:
    row = tx.execute(f"SELECT version FROM {table} WHERE num = ?", (num,)).fetchone()
    if row is None:
        return False
    if expected_version is not None and row[0] != expected_version:
        raise VersionMismatch(row[0], expected_version)
    return True
