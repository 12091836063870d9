"""The system of record's versions: a file made before rows had one gains the column, and a conditional
write is a compare-and-set. SQLite only (a real file), no services."""

import sqlite3

import pytest

from services.claims.repository import SCHEMA as CLAIMS_SCHEMA
from services.core.db import Database, delete_versioned, update_versioned
from services.core.errors import VersionMismatch
from services.customer.repository import SCHEMA as CUSTOMER_SCHEMA
from services.policy.repository import SCHEMA as POLICY_SCHEMA

OLD_POLICIES = """CREATE TABLE policies (num INTEGER PRIMARY KEY AUTOINCREMENT, customer_id TEXT NOT NULL,
    product TEXT NOT NULL, premium_cents INTEGER NOT NULL, coverage_cents INTEGER NOT NULL,
    start_date TEXT NOT NULL, end_date TEXT NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL);
INSERT INTO policies VALUES (1, 'CUS-000001', 'auto', 100, 1000, '2026-01-01', '2027-01-01', 'active', 't', 't');"""


def test_a_file_from_before_versions_gains_the_column_and_keeps_its_rows(tmp_path):
    path = tmp_path / "policy.sqlite3"
    with sqlite3.connect(path) as old:
        old.executescript(OLD_POLICIES)
    db = Database(path, POLICY_SCHEMA)
    try:
        row = db.conn.execute("SELECT num, premium_cents, version FROM policies").fetchone()
        assert tuple(row) == (1, 100, 1)
    finally:
        db.close()
    Database(path, POLICY_SCHEMA).close()  # opening it again changes nothing


@pytest.mark.parametrize("schema, table", [(POLICY_SCHEMA, "policies"), (CUSTOMER_SCHEMA, "customers"),
                                           (CLAIMS_SCHEMA, "claims")])
def test_every_entity_table_has_a_version_starting_at_one(tmp_path, schema, table):
    db = Database(tmp_path / "x.sqlite3", schema)
    try:
        columns = {row[1]: row for row in db.conn.execute(f"PRAGMA table_info({table})")}
        assert columns["version"][4] == "1" and columns["version"][3] == 1  # DEFAULT 1, NOT NULL
    finally:
        db.close()


def test_a_conditional_update_is_a_compare_and_set(tmp_path):
    db = Database(tmp_path / "policy.sqlite3", POLICY_SCHEMA)
    try:
        db.conn.execute("INSERT INTO policies (customer_id, product, premium_cents, coverage_cents, start_date, "
                        "end_date, status, created_at, updated_at) VALUES ('CUS-000001', 'auto', 1, 1, 'a', 'b', "
                        "'active', 't', 't')")
        with db.transaction() as tx:
            assert update_versioned(tx, "policies", 1, {"premium_cents": 2}, expected_version=1)
        with pytest.raises(VersionMismatch) as stale, db.transaction() as tx:
            update_versioned(tx, "policies", 1, {"premium_cents": 3}, expected_version=1)
        assert stale.value.status == 412 and stale.value.extra == {"current_version": 2}
        with pytest.raises(VersionMismatch), db.transaction() as tx:
            delete_versioned(tx, "policies", 1, expected_version=1)
        with db.transaction() as tx:
            assert not update_versioned(tx, "policies", 99, {"premium_cents": 3})  # no such row
            assert update_versioned(tx, "policies", 1, {"premium_cents": 4})  # unconditional: still bumps
        assert tuple(db.conn.execute("SELECT premium_cents, version FROM policies").fetchone()) == (4, 3)
        with db.transaction() as tx:
            assert delete_versioned(tx, "policies", 1, expected_version=3)
            assert not delete_versioned(tx, "policies", 1)
    finally:
        db.close()
