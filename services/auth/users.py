"""The lab's demo users, in the gateway's own small SQLite file, with scrypt password hashes.

| username | password     | role     | may                                                      |
|----------|--------------|----------|----------------------------------------------------------|
| alice    | alice-lab-pw | customer | read her own customer record, policies, claims; submit claims on her policies |
| bob      | bob-lab-pw   | customer | the same, for CUS-000002                                  |
| ada      | ada-lab-pw   | agent    | create and change customers and policies; read everything |
| joe      | joe-lab-pw   | adjuster | move claims through review; read everything                |

Demo passwords are printed here on purpose: this is a lab. The hashes are real.
"""

from __future__ import annotations

from pathlib import Path

from services.core.db import Database
from services.patterns.passwords import hash_password

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    user_id       TEXT PRIMARY KEY,
    username      TEXT UNIQUE NOT NULL,
    password_hash TEXT NOT NULL,
    roles         TEXT NOT NULL,
    customer_id   TEXT
);
"""

DEMO_USERS = [
    ("u-alice", "alice", ("customer",), "CUS-000001"),
    ("u-bob", "bob", ("customer",), "CUS-000002"),
    ("u-ada", "ada", ("agent",), None),
    ("u-joe", "joe", ("adjuster",), None),
]


def demo_password(username: str) -> str:
    return f"{username}-lab-pw"


def open_user_store(path: Path) -> Database:
    db = Database(path, SCHEMA)
    with db.transaction() as tx:
        for user_id, username, roles, customer_id in DEMO_USERS:
            if tx.execute("SELECT 1 FROM users WHERE user_id = ?", (user_id,)).fetchone() is None:
                tx.execute("INSERT INTO users VALUES (?, ?, ?, ?, ?)",
                           (user_id, username, hash_password(demo_password(username)), ",".join(roles), customer_id))
    return db


def find_user(db: Database, username: str) -> dict | None:
    row = db.conn.execute("SELECT * FROM users WHERE username = ?", (username,)).fetchone()
    if row is None:
        return None
    user = dict(row)
    user["roles"] = tuple(user["roles"].split(","))
    return user
