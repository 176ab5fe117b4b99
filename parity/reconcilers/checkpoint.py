"""Checkpoint of a reconcile run: per work unit, how far its spill file and its Scan got.

A run lives in `<report_dir>/runs/<target>-<UTC time>/`: one spill file per unit (see
`tally.py`) and `checkpoint.json`. A unit's entry is updated after each page/batch, once its
spill file is flushed, so (LastEvaluatedKey, offset) always describe the same point; the file
is rewritten atomically at most once a second. After a crash, `--resume` truncates each spill
file to its recorded offset, rebuilds the digests from it and continues:

- a DynamoDB segment continues its Scan from the recorded LastEvaluatedKey; a finished one is
  not read again;
- a finished Postgres partition is kept; an unfinished one restarts from zero, because the
  snapshot it was reading died with the crashed process. The new partitions read a newer
  snapshot; rows that changed in between are exactly the in-flight rows the recheck resolves.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from parity.core.errors import StoreError
from parity.files import DIR_MODE, private_dir, write_private

VERSION = 1


class Checkpoint:
    def __init__(self, run_dir: Path, data: dict[str, Any]) -> None:
        self.run_dir = run_dir
        self.data = data
        self._lock = threading.Lock()
        self._saved_at = 0.0

    @property
    def path(self) -> Path:
        return self.run_dir / "checkpoint.json"

    @classmethod
    def create(cls, report_dir: Path, target: str, params: dict[str, Any]) -> Checkpoint:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        run_dir = report_dir / "runs" / f"{_safe(target)}-{stamp}"
        private_dir(report_dir / "runs")  # spill files hold every key of the table (parity.files)
        run_dir.mkdir(mode=DIR_MODE, exist_ok=False)
        data = {"version": VERSION, "target": target, "complete": False, **params, "units": {}}
        cp = cls(run_dir, data)
        cp.save()
        return cp

    @classmethod
    def latest_incomplete(cls, report_dir: Path, target: str) -> Checkpoint | None:
        runs = report_dir / "runs"
        if not runs.is_dir():
            return None
        for run_dir in sorted(runs.glob(f"{_safe(target)}-*"), reverse=True):
            path = run_dir / "checkpoint.json"
            if not path.exists():
                continue
            try:
                data = orjson.loads(path.read_bytes())
            except orjson.JSONDecodeError:
                continue
            if data.get("version") == VERSION and data.get("target") == target and not data.get("complete"):
                return cls(run_dir, data)
            return None  # only the newest run may be resumed: an older one is stale
        return None

    def spill_path(self, unit: str) -> Path:
        return self.run_dir / f"{unit}.spill"

    def unit(self, name: str) -> dict[str, Any]:
        with self._lock:
            return dict(self.data["units"].get(name) or {})

    def update(self, name: str, **fields: Any) -> None:
        with self._lock:
            self.data["units"].setdefault(name, {}).update(fields)
        self.maybe_save()

    def set(self, **fields: Any) -> None:
        with self._lock:
            self.data.update(fields)
        self.save()

    def maybe_save(self, every_s: float = 1.0) -> None:
        if time.monotonic() - self._saved_at >= every_s:
            self.save()

    def save(self) -> None:
        with self._lock:
            payload = orjson.dumps(self.data)
            tmp = self.path.with_suffix(".tmp")
            try:
                write_private(tmp, payload)
                os.replace(tmp, self.path)
            except OSError as exc:
                raise StoreError(f"cannot write checkpoint {self.path}: {exc}") from exc
            self._saved_at = time.monotonic()


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
