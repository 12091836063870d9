"""The policy service's system of record (SQLite), the events its writes emit, and the claims it has heard of.

``policy_claims`` is the policy service's own view of which claims exist per policy, filled by its
subscriber to the claims channel (lesson 02): a derived read model, not a copy of the claims database.
"""

from __future__ import annotations

from services.core.db import Database, delete_versioned, update_versioned
from services.core.ids import id_number, make_id
from services.core.models import PolicyIn, PolicyPatch, utc_now
from services.patterns.envelope import Event, EventType
from services.patterns.outbox import OUTBOX_SCHEMA, add_to_outbox

TOPIC = "policies"

SCHEMA = """
CREATE TABLE IF NOT EXISTS policies (
    num            INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id    TEXT NOT NULL,
    product        TEXT NOT NULL,
    premium_cents  INTEGER NOT NULL,
    coverage_cents INTEGER NOT NULL,
    start_date     TEXT NOT NULL,
    end_date       TEXT NOT NULL,
    status         TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    version        INTEGER NOT NULL DEFAULT 1  -- bumped by every write: the ETag (services/platform/etags.py)
);
CREATE INDEX IF NOT EXISTS policies_customer ON policies (customer_id);
CREATE INDEX IF NOT EXISTS policies_status ON policies (status);
CREATE TABLE IF NOT EXISTS policy_claims (
    claim_id  TEXT PRIMARY KEY,
    policy_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS policy_claims_policy ON policy_claims (policy_id);
""" + OUTBOX_SCHEMA

COLUMNS = ("num, customer_id, product, premium_cents, coverage_cents, start_date, end_date, status, "
           "created_at, updated_at, version")


def _to_policy(row: dict | None) -> dict | None:
    if row is None:
        return None
    row = dict(row)
    return {"id": make_id("policy", row.pop("num")), **row}


async def get_policy(db: Database, policy_id: str) -> dict | None:
    return _to_policy(await db.fetch_one(f"SELECT {COLUMNS} FROM policies WHERE num = ?",
                                         (id_number(policy_id),)))


async def list_policies(db: Database, limit: int, offset: int, **filters) -> tuple[list[dict], int]:
    filters = {k: v for k, v in filters.items() if v is not None}
    where = ("WHERE " + " AND ".join(f"{k} = ?" for k in filters)) if filters else ""
    params = tuple(filters.values())
    total = await db.scalar(f"SELECT COUNT(*) FROM policies {where}", params)
    rows = await db.fetch_all(f"SELECT {COLUMNS} FROM policies {where} ORDER BY num LIMIT ? OFFSET ?",
                              (*params, limit, offset))
    return [_to_policy(r) for r in rows], total


def create_policy(db: Database, data: PolicyIn) -> dict:
    now = utc_now()
    with db.transaction() as tx:
        num = tx.execute(
            "INSERT INTO policies (customer_id, product, premium_cents, coverage_cents, start_date, end_date, "
            "status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'active', ?, ?)",
            (data.customer_id, data.product, data.premium_cents, data.coverage_cents,
             data.start_date.isoformat(), data.end_date.isoformat(), now, now),
        ).lastrowid
        policy = _to_policy(dict(tx.execute(f"SELECT {COLUMNS} FROM policies WHERE num = ?", (num,)).fetchone()))
        add_to_outbox(tx, Event(EventType.POLICY_CREATED, TOPIC, policy["id"], {"policy": policy}), TOPIC)
    return policy


def update_policy(db: Database, policy_id: str, change: PolicyPatch | dict,
                  expected_version: int | None = None) -> dict | None:
    """Apply the change and bump the version; None if there is no such policy.

    ``expected_version`` (from ``If-Match``) makes it conditional: VersionMismatch (412) if the policy
    was changed since the client read it, and nothing is written.
    """
    fields = change if isinstance(change, dict) else change.model_dump(exclude_none=True, mode="json")
    with db.transaction() as tx:
        stamped = {**fields, "updated_at": utc_now()} if fields else {}
        if not update_versioned(tx, "policies", id_number(policy_id), stamped, expected_version):
            return None
        row = tx.execute(f"SELECT {COLUMNS} FROM policies WHERE num = ?", (id_number(policy_id),)).fetchone()
        policy = _to_policy(dict(row)) if row else None
        if policy and fields:
            kind = EventType.POLICY_CANCELLED if fields.get("status") == "cancelled" else EventType.POLICY_UPDATED
            add_to_outbox(tx, Event(kind, TOPIC, policy_id, {"changes": fields, "policy": policy}), TOPIC)
    return policy


def delete_policy(db: Database, policy_id: str, expected_version: int | None = None) -> bool:
    with db.transaction() as tx:
        deleted = delete_versioned(tx, "policies", id_number(policy_id), expected_version)
        if deleted:
            add_to_outbox(tx, Event(EventType.POLICY_DELETED, TOPIC, policy_id, {"id": policy_id}), TOPIC)
    return deleted


def record_claim(db: Database, policy_id: str, claim_id: str) -> None:
    """The subscriber heard of a claim on this policy. Idempotent: hearing it twice counts it once."""
    db.conn.execute("INSERT OR IGNORE INTO policy_claims (claim_id, policy_id) VALUES (?, ?)", (claim_id, policy_id))


async def claims_count(db: Database, policy_id: str) -> int:
    return await db.scalar("SELECT COUNT(*) FROM policy_claims WHERE policy_id = ?", (policy_id,))
