"""Notebook 00's experiment: the same read straight to a service and through the gateway."""

from __future__ import annotations

import time

import httpx
import pandas as pd


def time_requests(urls: dict[str, str], n: int = 200, warmup: int = 20,
                  headers: dict[str, dict] | None = None) -> pd.DataFrame:
    """GET every URL ``n`` times, interleaved, on one kept-alive connection per URL.

    Interleaving (a, b, a, b, ...) means a burst of noise on a shared machine hits both paths alike, which
    is what makes a side-by-side comparison fair.
    """
    rows = []
    headers = headers or {}
    clients = {label: httpx.Client(timeout=10, headers=headers.get(label)) for label in urls}
    try:
        for i in range(-warmup, n):
            for label, url in urls.items():
                started = time.perf_counter()
                response = clients[label].get(url)
                elapsed = (time.perf_counter() - started) * 1000
                if i >= 0:
                    rows.append({"path": label, "i": i, "status": response.status_code, "latency_ms": elapsed,
                                 "served_by": response.headers.get("x-served-by", "")})
    finally:
        for client in clients.values():
            client.close()
    return pd.DataFrame(rows)
