"""The customer service's system of record (SQLite), the events its writes emit, and notifications.

Ids are derived from the row number. ``notifications`` is filled by the customer service's subscriber to
the claims channel (lesson 02): "claim CLM-x for your policy POL-y was approved".
"""

from __future__ import annotations

from services.core.db import Database, delete_versioned, update_versioned
from services.core.ids import id_number, make_id
from services.core.models import CustomerIn, CustomerPatch, utc_now
from services.patterns.envelope import Event, EventType
from services.patterns.outbox import OUTBOX_SCHEMA, add_to_outbox

TOPIC = "customers"

SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    num           INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL,
    email         TEXT NOT NULL,
    date_of_birth TEXT NOT NULL,
    risk_tier     TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    version       INTEGER NOT NULL DEFAULT 1  -- bumped by every write: the ETag (services/platform/etags.py)
);
CREATE INDEX IF NOT EXISTS customers_risk_tier ON customers (risk_tier);
CREATE TABLE IF NOT EXISTS notifications (
    num         INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    TEXT NOT NULL UNIQUE,
    customer_id TEXT NOT NULL,
    message     TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS notifications_customer ON notifications (customer_id, num);
""" + OUTBOX_SCHEMA

COLUMNS = "num, name, email, date_of_birth, risk_tier, created_at, updated_at, version"


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
        customer = _to_customer(dict(tx.execute(f"SELECT {COLUMNS} FROM customers WHERE num = ?", (num,)).fetchone()))
        add_to_outbox(tx, Event(EventType.CUSTOMER_CREATED, TOPIC, customer["id"], {"customer": customer}), TOPIC)
    return customer


def update_customer(db: Database, customer_id: str, change: CustomerPatch,
                    expected_version: int | None = None) -> dict | None:
    """Apply the change and bump the version; None if there is no such customer; VersionMismatch (412) if
    ``expected_version`` (from ``If-Match``) is no longer the customer's version."""
    fields = change.model_dump(exclude_none=True)
    with db.transaction() as tx:
        stamped = {**fields, "updated_at": utc_now()} if fields else {}
        if not update_versioned(tx, "customers", id_number(customer_id), stamped, expected_version):
            return None
        row = tx.execute(f"SELECT {COLUMNS} FROM customers WHERE num = ?", (id_number(customer_id),)).fetchone()
        customer = _to_customer(dict(row)) if row else None
        if customer and fields:
            add_to_outbox(tx, Event(EventType.CUSTOMER_UPDATED, TOPIC, customer_id,
                                    {"changes": fields, "customer": customer}), TOPIC)
    return customer


def delete_customer(db: Database, customer_id: str, expected_version: int | None = None) -> bool:
    with db.transaction() as tx:
        deleted = delete_versioned(tx, "customers", id_number(customer_id), expected_version)
        if deleted:
            add_to_outbox(tx, Event(EventType.CUSTOMER_DELETED, TOPIC, customer_id, {"id": customer_id}), TOPIC)
    return deleted


def add_notification(db: Database, event_id: str, customer_id: str, message: str) -> None:
    """Idempotent by event id: the same event heard twice notifies once."""
    db.conn.execute("INSERT OR IGNORE INTO notifications (event_id, customer_id, message, created_at) "
                    "VALUES (?, ?, ?, ?)", (event_id, customer_id, message, utc_now()))


async def notifications_of(db: Database, customer_id: str, limit: int = 50) -> list[dict]:
    return await db.fetch_all("SELECT message, created_at, event_id FROM notifications WHERE customer_id = ? "
                              "ORDER BY num DESC LIMIT ?", (customer_id, limit))
