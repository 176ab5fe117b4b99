"""Periodic reconciles inside `parity run`: single-flight, with jitter, stoppable.

One background thread waits `interval_s + uniform(0, jitter_s)` between runs (jitter keeps a
fleet of daemons from scanning the same table at the same moment). Runs never overlap: the next
wait starts when a run ends. `stop()` interrupts the wait and asks a running reconcile to stop at
its next page; its checkpoint stays for a later `parity reconcile --resume`.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from parity.core.config import ParityConfig

log = structlog.get_logger("parity.reconcile")


class ReconcileSchedule:
    def __init__(
        self,
        config: ParityConfig,
        *,
        metrics: Any | None = None,
        state: Any | None = None,
        dynamo: Any | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.state = state
        self._dynamo = dynamo
        self._rand = rand
        self._stop = threading.Event()
        self._flight = threading.Lock()
        self._thread: threading.Thread | None = None
        self.runs = 0
        self.last_summary: dict[str, Any] | None = None

    def next_wait(self) -> float:
        settings = self.config.reconcile
        return float(settings.interval_s or 0) + settings.jitter_s * self._rand()

    def start(self) -> ReconcileSchedule:
        self._thread = threading.Thread(target=self._loop, name="reconcile-schedule", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.wait(self.next_wait()):
            self.run_once()

    def run_once(self) -> dict[str, Any] | None:
        """One run unless one is already in flight (then None)."""
        if not self._flight.acquire(blocking=False):
            return None
        try:
            return self._run()
        finally:
            self._flight.release()

    def _run(self) -> dict[str, Any] | None:
        from parity.reconcilers.reconcile import Reconciler, write_report
        from parity.reconcilers.report import drift_total, not_compared_total

        store, owned = self._store()
        started = time.time()
        try:
            reconciler = Reconciler(self.config, dynamo=store, dsn=self.config.postgres,
                                    metrics=self.metrics, stop=self._stop)
            report = reconciler.run()
            path = write_report(report, Path(self.config.reconcile.report_dir))
            summary = {
                "run_id": report["run_id"],
                "finished_at": report["finished_at"],
                "duration_s": report["duration_s"],
                "drift_total": drift_total(report),
                "not_compared_total": not_compared_total(report),
                "report": str(path),
                "tables": {s: t["drift_counts"] for s, t in report["tables"].items()},
            }
        except Exception as exc:  # a failed run is logged and retried at the next interval
            log.warning("reconcile_failed", error=str(exc), after_s=round(time.time() - started, 1))
            summary = {"failed_at": time.time(), "error": str(exc)}
        finally:
            if owned:
                store.close()
        self.runs += 1
        self.last_summary = summary
        if self.state is not None:
            self.state.set_fact("last_reconcile", summary)
            if "run_id" in summary:
                self._reflect_in_open_drift(self.state, report)
        return summary

    def _reflect_in_open_drift(self, state: Any, report: dict[str, Any]) -> None:
        """The stream's open drift and the reconcile agree: keys found clean close, keys found
        drifted open (parity.adapters.state.StateStore.reconciled)."""
        from parity.adapters.state import reconcile_drift_keys

        started = _epoch(report["started_at"])
        for source, table in report["tables"].items():
            target = table.get("target") or self.config.table(source).write_table
            res = state.reconciled(source, target, started_at=started, drifted=reconcile_drift_keys(table),
                                        at=time.time())
            if res["resolved"] or res["opened"]:
                log.info("open_drift_reconciled", table=source, **res)

    def _store(self) -> tuple[Any, bool]:
        if self._dynamo is not None:
            return self._dynamo, False
        from parity.adapters.clients import dynamodb_client
        from parity.adapters.dynamodb import DynamoStore

        # The daemon's own clients serve the stream; a reconcile gets its own connection pool.
        return DynamoStore(dynamodb_client(self.config.dynamodb), concurrency=4), True


def _epoch(iso: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(iso).timestamp()
