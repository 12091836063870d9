"""The claims service's system of record (SQLite), and the events its writes emit (same transaction)."""

from __future__ import annotations

from services.core.db import Database
from services.core.errors import VersionMismatch
from services.core.ids import id_number, make_id
from services.core.models import utc_now
from services.patterns.envelope import Event, EventType
from services.patterns.outbox import OUTBOX_SCHEMA, add_to_outbox

TOPIC = "claims"

SCHEMA = """
CREATE TABLE IF NOT EXISTS claims (
    num          INTEGER PRIMARY KEY AUTOINCREMENT,
    policy_id    TEXT NOT NULL,
    customer_id  TEXT NOT NULL,
    amount_cents INTEGER NOT NULL,
    description  TEXT NOT NULL,
    status       TEXT NOT NULL,
    note         TEXT,
    submitted_at TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    version      INTEGER NOT NULL DEFAULT 1  -- bumped by every write: the ETag (services/platform/etags.py)
);
CREATE INDEX IF NOT EXISTS claims_policy ON claims (policy_id);
CREATE INDEX IF NOT EXISTS claims_customer ON claims (customer_id);
CREATE INDEX IF NOT EXISTS claims_status ON claims (status);
""" + OUTBOX_SCHEMA

COLUMNS = ("num, policy_id, customer_id, amount_cents, description, status, note, submitted_at, updated_at, "
           "version")


def _to_claim(row: dict | None) -> dict | None:
    if row is None:
        return None
    row = dict(row)
    return {"id": make_id("claim", row.pop("num")), **row}


async def get_claim(db: Database, claim_id: str) -> dict | None:
    return _to_claim(await db.fetch_one(f"SELECT {COLUMNS} FROM claims WHERE num = ?", (id_number(claim_id),)))


async def list_claims(db: Database, limit: int, offset: int, **filters) -> tuple[list[dict], int]:
    filters = {k: v for k, v in filters.items() if v is not None}
    where = ("WHERE " + " AND ".join(f"{k} = ?" for k in filters)) if filters else ""
    params = tuple(filters.values())
    total = await db.scalar(f"SELECT COUNT(*) FROM claims {where}", params)
    rows = await db.fetch_all(f"SELECT {COLUMNS} FROM claims {where} ORDER BY num LIMIT ? OFFSET ?",
                              (*params, limit, offset))
    return [_to_claim(r) for r in rows], total


def create_claim(db: Database, policy_id: str, customer_id: str, amount_cents: int, description: str,
                 actor: str = "system", coverage_cents: int | None = None) -> dict:
    """Insert the claim and its ``claim.submitted`` event in one transaction.

    The event carries the whole claim (so its history can be replayed from events alone), who submitted it
    and the policy's coverage at that moment (what the worker's risk score needs).
    """
    now = utc_now()
    with db.transaction() as tx:
        row = tx.execute(  # RETURNING: the row as stored (its number, the defaults), without a second query
            "INSERT INTO claims (policy_id, customer_id, amount_cents, description, status, submitted_at, "
            f"updated_at) VALUES (?, ?, ?, ?, 'submitted', ?, ?) RETURNING {COLUMNS}",
            (policy_id, customer_id, amount_cents, description, now, now),
        ).fetchone()
        claim = _to_claim(dict(row))
        add_to_outbox(tx, Event(EventType.CLAIM_SUBMITTED, TOPIC, claim["id"],
                                {"claim": claim, "actor": actor, "coverage_cents": coverage_cents}), TOPIC)
    return claim


def change_status(db: Database, claim_id: str, expected: str, new_status: str, note: str | None,
                  actor: str = "system", expected_version: int | None = None) -> dict | None:
    """Move a claim from ``expected`` to ``new_status``; None if it was no longer in ``expected``.

    The ``WHERE status = ?`` makes the transition a compare-and-set: two adjusters racing to approve and
    reject the same claim — or both sending it to review — cannot both win. ``expected_version`` (from
    ``If-Match``) narrows it further to the version the client read (VersionMismatch, 412, if it moved on).
    The ``claim.status_changed`` event (from, to, actor, note, when, the new version) commits with it.
    """
    now = utc_now()
    num = id_number(claim_id)
    where, params = "num = ? AND status = ?", [num, expected]
    if expected_version is not None:
        where, params = where + " AND version = ?", [*params, expected_version]
    with db.transaction() as tx:
        changed = tx.execute(
            "UPDATE claims SET status = ?, note = COALESCE(?, note), updated_at = ?, version = version + 1 "
            f"WHERE {where}", (new_status, note, now, *params),
        ).rowcount
        if not changed:
            current = tx.execute("SELECT version FROM claims WHERE num = ?", (num,)).fetchone()
            if current is not None and expected_version is not None and current[0] != expected_version:
                raise VersionMismatch(current[0], expected_version)
            return None
        row = tx.execute(f"SELECT {COLUMNS} FROM claims WHERE num = ?", (num,)).fetchone()
        claim = _to_claim(dict(row))
        add_to_outbox(tx, Event(EventType.CLAIM_STATUS_CHANGED, TOPIC, claim_id, {
            "from": expected, "to": new_status, "actor": actor, "note": note, "updated_at": now,
            "version": claim["version"], "policy_id": claim["policy_id"], "customer_id": claim["customer_id"]}),
            TOPIC)
    return claim
