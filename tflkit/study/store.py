"""study.db: every stage's result, recorded the moment it finishes (SQLite in WAL mode).

Tables (open the file with `sqlite3 DIR/study.db` to query it):
  meta      key/value: the study's name, its spec (JSON) and digest, when it was created
  cells     one row per cell: model, dataset, regime, the resolved TrainConfig, its run directory
  stages    one row per (cell, stage): status (running, ok, failed), reason, wall and CPU seconds, the stage's
            result and provenance (JSON). A stage found `running` on resume was killed midway: it is redone.
  files     one row per (cell, recipe): the .tflite's status, path, sha256, size, params, MACs, arena, top-1/top-5
  latency   one row per (cell, recipe, target, delegate, threads): median/p95/mean/std ms, partitions, memory

Unknown stays NULL: a figure that was not measured is never written as 0.
Only the driver process writes (the executors send stage records back to it), so there is one writer.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS cells (
    cell TEXT PRIMARY KEY, model TEXT NOT NULL, dataset TEXT NOT NULL, regime TEXT NOT NULL,
    fingerprint TEXT NOT NULL, config TEXT NOT NULL, run_dir TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stages (
    cell TEXT NOT NULL, stage TEXT NOT NULL, status TEXT NOT NULL, message TEXT,
    started_at REAL, finished_at REAL, wall_s REAL, cpu_s REAL, result TEXT, provenance TEXT,
    PRIMARY KEY (cell, stage));
CREATE TABLE IF NOT EXISTS files (
    cell TEXT NOT NULL, recipe TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'unknown', message TEXT, path TEXT,
    sha256 TEXT,
    size_bytes INTEGER, gzip_bytes INTEGER, params INTEGER, macs INTEGER, arena_bytes INTEGER,
    top1 REAL, top5 REAL, eval_images INTEGER, agreement REAL, extra TEXT,
    PRIMARY KEY (cell, recipe));
CREATE TABLE IF NOT EXISTS latency (
    cell TEXT NOT NULL, recipe TEXT NOT NULL, target TEXT NOT NULL, device TEXT, delegate TEXT NOT NULL,
    threads INTEGER NOT NULL, status TEXT NOT NULL DEFAULT 'unknown', message TEXT, median_ms REAL, p95_ms REAL,
    mean_ms REAL, std_ms REAL, count INTEGER, init_ms REAL, partitions INTEGER, rss_delta_mb REAL, peak_memory_mb REAL,
    inputs TEXT,
    PRIMARY KEY (cell, recipe, target, delegate, threads));
"""

FILE_COLUMNS = ("status", "message", "path", "sha256", "size_bytes", "gzip_bytes", "params", "macs", "arena_bytes",
                "top1", "top5", "eval_images", "agreement", "extra")
LATENCY_COLUMNS = ("device", "status", "message", "median_ms", "p95_ms", "mean_ms", "std_ms", "count", "init_ms",
                   "partitions", "rss_delta_mb", "peak_memory_mb", "inputs")


class StudyStore:
    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a committed row survives a process kill
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # meta
    def get_meta(self, key: str, default=None):
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row["value"]) if row else default

    def set_meta(self, key: str, value) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    # cells
    def put_cell(self, cell, run_dir) -> None:
        self.db.execute("INSERT OR REPLACE INTO cells VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (cell.id, cell.model, cell.dataset, cell.regime, cell.fingerprint(),
                         json.dumps(cell.config, sort_keys=True), str(run_dir)))

    def cells(self) -> list[dict]:
        rows = self.db.execute("SELECT * FROM cells ORDER BY rowid").fetchall()
        return [{**dict(r), "config": json.loads(r["config"])} for r in rows]

    def forget_cell(self, cell_id: str) -> None:
        """Drop every result of a cell (its redo after `--allow-changes`)."""
        with self.transaction():
            for table in ("stages", "files", "latency"):
                self.db.execute(f"DELETE FROM {table} WHERE cell = ?", (cell_id,))

    def forget_failed(self) -> int:
        """Drop failed stage records so that they run again; returns how many."""
        return self.db.execute("DELETE FROM stages WHERE status = 'failed'").rowcount

    def forget_measurements(self, kind: str, cells: list[str] | None = None) -> int:
        """Drop every `eval`, `bench_host`, `bench_phone` or `mcu` stage (and its figures) so that they are measured
        again, e.g. the host latencies of a study that ran on a busy machine; `convert` drops the conversions and
        everything measured on their files (a newer converter or recipe). Only `cells` when given. Returns how
        many stages."""
        if cells is not None and not cells:
            return 0
        only = "" if cells is None else f" AND cell IN ({', '.join('?' for _ in cells)})"
        args = tuple(cells or ())
        with self.transaction():
            if kind == "convert":
                count = self.db.execute("DELETE FROM stages WHERE (stage LIKE 'convert/%' OR stage LIKE 'eval/%' "
                                        "OR stage LIKE 'bench_host/%' OR stage LIKE 'bench_phone/%' "
                                        "OR stage LIKE 'mcu/%')" + only,
                                        args).rowcount
                self.db.execute("DELETE FROM files WHERE 1" + only, args)
                self.db.execute("DELETE FROM latency WHERE 1" + only, args)
                return count
            count = self.db.execute("DELETE FROM stages WHERE stage LIKE ?" + only, (f"{kind}/%", *args)).rowcount
            if kind == "bench_host":
                self.db.execute("DELETE FROM latency WHERE target = 'host'" + only, args)
            elif kind == "bench_phone":
                self.db.execute("DELETE FROM latency WHERE target != 'host'" + only, args)
            elif kind == "eval":
                self.db.execute("UPDATE files SET top1 = NULL, top5 = NULL, eval_images = NULL WHERE 1" + only, args)
        return count

    # stages
    def start_stage(self, cell: str, stage: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO stages (cell, stage, status, started_at) VALUES (?, ?, 'running', ?)",
                        (cell, stage, time.time()))

    def finish_stage(self, cell: str, stage: str, status: str, message: str = "", wall_s=None, cpu_s=None,
                     result=None, provenance=None) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO stages VALUES (?, ?, ?, ?, "
            "COALESCE((SELECT started_at FROM stages WHERE cell = ? AND stage = ?), ?), ?, ?, ?, ?, ?)",
            (cell, stage, status, message, cell, stage, time.time() - (wall_s or 0), time.time(), wall_s, cpu_s,
             json.dumps(result) if result is not None else None,
             json.dumps(provenance) if provenance is not None else None))

    def stage(self, cell: str, stage: str) -> dict | None:
        row = self.db.execute("SELECT * FROM stages WHERE cell = ? AND stage = ?", (cell, stage)).fetchone()
        return _stage_dict(row) if row else None

    def stages(self, cell: str | None = None) -> list[dict]:
        if cell is None:
            rows = self.db.execute("SELECT * FROM stages ORDER BY started_at").fetchall()
        else:
            rows = self.db.execute("SELECT * FROM stages WHERE cell = ? ORDER BY started_at", (cell,)).fetchall()
        return [_stage_dict(r) for r in rows]

    def finished(self, cell: str) -> set[str]:
        """Stages of the cell that need no redo: finished, whatever their outcome (a failure is a result too)."""
        rows = self.db.execute("SELECT stage FROM stages WHERE cell = ? AND status != 'running'", (cell,))
        return {r["stage"] for r in rows}

    # measurements
    def put_file(self, cell: str, recipe: str, **values) -> None:
        """Insert or update the (cell, recipe) row; only the given columns change."""
        _check_columns(values, FILE_COLUMNS)
        if "extra" in values and not isinstance(values["extra"], (str, type(None))):
            values["extra"] = json.dumps(values["extra"])
        self._upsert("files", ("cell", "recipe"), (cell, recipe), values)

    def put_latency(self, cell: str, recipe: str, target: str, delegate: str, threads: int, **values) -> None:
        _check_columns(values, LATENCY_COLUMNS)
        self._upsert("latency", ("cell", "recipe", "target", "delegate", "threads"),
                     (cell, recipe, target, delegate, threads), values)

    def _upsert(self, table: str, key_names, key_values, values: dict) -> None:
        names = [*key_names, *values]
        placeholders = ", ".join("?" for _ in names)
        updates = ", ".join(f"{k} = excluded.{k}" for k in values) or f"{key_names[0]} = excluded.{key_names[0]}"
        self.db.execute(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({placeholders}) "
                        f"ON CONFLICT ({', '.join(key_names)}) DO UPDATE SET {updates}",
                        (*key_values, *values.values()))

    def files(self) -> list[dict]:
        rows = self.db.execute("SELECT * FROM files ORDER BY rowid").fetchall()
        return [{**dict(r), "extra": json.loads(r["extra"]) if r["extra"] else {}} for r in rows]

    def latencies(self) -> list[dict]:
        return [dict(r) for r in self.db.execute("SELECT * FROM latency ORDER BY rowid").fetchall()]

    def transaction(self):
        return _Transaction(self.db)


class _Transaction:
    def __init__(self, db):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, *exc):
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")


def _stage_dict(row) -> dict:
    d = dict(row)
    for key in ("result", "provenance"):
        d[key] = json.loads(d[key]) if d[key] else None
    return d


def _check_columns(values: dict, allowed) -> None:
    unknown = set(values) - set(allowed)
    if unknown:
        raise ValueError(f"unknown column(s) {sorted(unknown)}")


STUDY_DB = "study.db"  # in a study directory, beside cells/ and the report


def open_store(out_dir) -> StudyStore:
    return StudyStore(Path(out_dir) / STUDY_DB)
