"""What every service shares: settings, the key schema, Redis, the SQLite system of record, errors."""
