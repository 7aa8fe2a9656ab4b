"""The traffic log: one row per request, appended by the gateway, read by monitoring and cost.

SQLite in WAL mode under the deployment directory, so readers (Dagster assets) never block
the endpoint's writes. With `store_prompts=False` only a sha256 of the prompt is kept.
"""
from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    endpoint TEXT NOT NULL,
    model_version TEXT,
    variant TEXT,
    status INTEGER NOT NULL,
    cold INTEGER NOT NULL DEFAULT 0,
    prompt_tokens INTEGER,
    output_tokens INTEGER,
    ttft_s REAL,
    e2e_s REAL,
    prompt TEXT,
    prompt_sha256 TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts);
"""


@dataclass
class TrafficRecord:
    endpoint: str
    status: int
    model_version: str | None = None
    variant: str | None = None
    cold: bool = False
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    ttft_s: float | None = None
    e2e_s: float | None = None
    prompt: str | None = None
    error: str | None = None
    ts: float = 0.0


class TrafficLog:
    def __init__(self, path: str | Path, store_prompts: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.store_prompts = store_prompts
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def append(self, rec: TrafficRecord) -> None:
        row = asdict(rec)
        row["ts"] = rec.ts or time.time()
        prompt = row.pop("prompt")
        row["prompt_sha256"] = hashlib.sha256(prompt.encode("utf-8", "replace")).hexdigest() if prompt else None
        row["prompt"] = prompt if self.store_prompts else None
        row["cold"] = int(rec.cold)
        cols = ", ".join(row)
        with self._lock:
            self._db.execute(f"INSERT INTO requests ({cols}) VALUES ({', '.join('?' * len(row))})",
                             tuple(row.values()))

    def rows(self, since_ts: float = 0.0) -> list[dict]:
        with self._lock:
            cur = self._db.execute("SELECT * FROM requests WHERE ts >= ? ORDER BY id", (since_ts,))
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r)) for r in cur.fetchall()]

    def close(self) -> None:
        with self._lock:
            self._db.close()
