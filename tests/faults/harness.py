"""Shared set-up for the fault suite: a payments deployment on the real stack, a daemon in a
thread (with telemetry, so /readyz and metrics can be read) and the end-of-run accounting.

The accounting every fault test ends with (`account`):
- every record in the CDC topics has an outcome in the state store (outcome counts sum to at
  least the number of records: at-least-once, so a replay after a fault may count twice);
- the daemon's committed offsets reached the end of every partition (nothing skipped or stuck);
- the drift set equals the injected drift exactly (none lost, none false).
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from parity.core.config import ParityConfig
from parity.daemon.app import DaemonApp
from parity.daemon.run import Daemon
from parity.workload import PaymentsApp
from tests.integration.payments_harness import expected_drift
from tests.integration.verify_harness import drift_set, partition_ends, resolved_total, wait_for


class TelemetryDaemon(DaemonApp):
    """A daemon in a thread, composed as `parity run` composes it (Prometheus telemetry, the
    reachability probe behind /readyz and parity_dependency_up), without the HTTP server (the tests
    read the registry) and with the probe refreshed every 2 s, not 10 s, so an outage shows soon."""

    def __init__(self, config: ParityConfig) -> None:
        super().__init__(config, http=False, probe_interval_s=2.0, reconcile_schedule=False)


def committed_offsets(bootstrap: str, group: str, tps: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        got = consumer.committed([TopicPartition(t, p) for t, p in tps], timeout=15)
        return {(tp.topic, tp.partition): max(tp.offset, 0) for tp in got}
    finally:
        consumer.close()


@dataclass
class Accounting:
    records: int  # records in the CDC topics
    outcomes: int  # outcomes recorded (>= records; the surplus is replays after faults)
    lost: int  # records past the committed offsets at the end (never resolved)
    drift_found: int
    drift_injected: int
    false_drift: int
    missed_drift: int  # injected drift not reported, other than the stale-write race below
    # `stale_in_target` injected as "newer write, then an older retry overwrites it" is invisible to
    # the streaming verifier when its read lands between the two writes (see parity/workload.py:
    # only the reconciler can catch that later overwrite). Seen without any fault too; counted apart.
    missed_stale_race: int = 0
    detail: str = ""  # the missed and false drift, for a failing assertion

    def line(self, fault: str) -> str:
        return (
            f"FAULT-RESULT {fault}: records={self.records} outcomes={self.outcomes} lost={self.lost} "
            f"injected={self.drift_injected} found={self.drift_found} false={self.false_drift} "
            f"missed={self.missed_drift} missed_stale_race={self.missed_stale_race}"
        )


def settle_and_account(
    config: ParityConfig,
    bootstrap: str,
    topics: list[str],
    app: PaymentsApp,
    *,
    daemon: Daemon | None = None,
    timeout: float = 150.0,
    quiet_s: float = 8.0,
) -> Accounting:
    """Wait until every record has an outcome, every injected drift is in, and the committed
    offsets reached the end; then a grace period more (nothing else may appear); then count."""
    injected = expected_drift(app)
    group = config.kafka.group_id

    def done() -> bool:
        if daemon is not None and len(daemon.pipeline.rechecks):
            return False
        ends = partition_ends(bootstrap, topics)  # again each time: the bridge may still publish
        if resolved_total(config) < sum(ends.values()) or len(drift_set(config)) < len(injected):
            return False
        committed = committed_offsets(bootstrap, group, list(ends))
        return all(committed.get(tp, 0) >= end for tp, end in ends.items())

    with contextlib.suppress(TimeoutError):  # counted below: the assertions name what is missing
        wait_for(done, timeout, "all records resolved and committed", interval=1.0)
    time.sleep(quiet_s)
    ends = partition_ends(bootstrap, topics)
    records = sum(ends.values())  # offsets start at 0 and nothing is compacted here
    committed = committed_offsets(bootstrap, group, list(ends))
    found = drift_set(config)
    acc = Accounting(
        records=records,
        outcomes=resolved_total(config),
        lost=sum(max(0, end - committed.get(tp, 0)) for tp, end in ends.items()),
        drift_found=len(found),
        drift_injected=len(injected),
        false_drift=len(set(found) - set(injected)),
        missed_drift=len({m for m in set(injected) - set(found) if m[2] != "stale_in_target"}),
        missed_stale_race=len({m for m in set(injected) - set(found) if m[2] == "stale_in_target"}),
        detail=f"missed {sorted(set(injected) - set(found))} false {sorted(set(found) - set(injected))} "
        + (
            f"pending {[(c.key, c.op, c.attempts, c.tp) for c in daemon.pipeline.rechecks.checks()]} "
            f"lag {daemon.source.lag()} caught_up {sorted(daemon._caught_up)}"
            if daemon is not None
            else ""
        ),
    )
    return acc


def assert_accounted(acc: Accounting, fault: str) -> None:
    print(acc.line(fault))  # collected into RELIABILITY.md (pytest -s shows it)
    assert acc.lost == 0, acc
    assert acc.outcomes >= acc.records, acc
    assert acc.false_drift == 0, acc
    assert acc.missed_drift == 0, acc
    assert acc.drift_found + acc.missed_stale_race == acc.drift_injected, acc
    assert acc.missed_stale_race <= max(1, acc.drift_injected // 10), acc  # a race, not a pattern


def drift_log_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
