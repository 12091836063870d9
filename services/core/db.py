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
        self.conn.executescript(schema)

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
