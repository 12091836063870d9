"""The customer service's system of record (SQLite). Ids are derived from the row number."""

from __future__ import annotations

from services.core.db import Database
from services.core.ids import id_number, make_id
from services.core.models import CustomerIn, CustomerPatch, utc_now

SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    num           INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL,
    email         TEXT NOT NULL,
    date_of_birth TEXT NOT NULL,
    risk_tier     TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS customers_risk_tier ON customers (risk_tier);
"""

COLUMNS = "num, name, email, date_of_birth, risk_tier, created_at, updated_at"


def _to_customer(row: dict | None) -> dict | None:
    if row is None:
        return None
    row = dict(row)
    return {"id": make_id("customer", row.pop("num")), **row}


async def get_customer(db: Database, customer_id: str) -> dict | None:
    return _to_customer(await db.fetch_one(f"SELECT {COLUMNS} FROM customers WHERE num = ?",
                                           (id_number(customer_id),)))


async def list_customers(db: Database, limit: int, offset: int, risk_tier: str | None = None):
    where, params = ("WHERE risk_tier = ?", (risk_tier,)) if risk_tier else ("", ())
    total = await db.scalar(f"SELECT COUNT(*) FROM customers {where}", params)
    rows = await db.fetch_all(f"SELECT {COLUMNS} FROM customers {where} ORDER BY num LIMIT ? OFFSET ?",
                              (*params, limit, offset))
    return [_to_customer(r) for r in rows], total


def create_customer(db: Database, data: CustomerIn) -> dict:
    now = utc_now()
    with db.transaction() as tx:
        num = tx.execute(
            "INSERT INTO customers (name, email, date_of_birth, risk_tier, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (data.name, data.email, data.date_of_birth.isoformat(), data.risk_tier, now, now),
        ).lastrowid
        row = tx.execute(f"SELECT {COLUMNS} FROM customers WHERE num = ?", (num,)).fetchone()
    return _to_customer(dict(row))


def update_customer(db: Database, customer_id: str, change: CustomerPatch) -> dict | None:
    fields = change.model_dump(exclude_none=True)
    with db.transaction() as tx:
        if fields:
            assignments = ", ".join(f"{name} = ?" for name in fields)
            tx.execute(f"UPDATE customers SET {assignments}, updated_at = ? WHERE num = ?",
                       (*fields.values(), utc_now(), id_number(customer_id)))
        row = tx.execute(f"SELECT {COLUMNS} FROM customers WHERE num = ?", (id_number(customer_id),)).fetchone()
    return _to_customer(dict(row)) if row else None


def delete_customer(db: Database, customer_id: str) -> bool:
    with db.transaction() as tx:
        return tx.execute("DELETE FROM customers WHERE num = ?", (id_number(customer_id),)).rowcount > 0
