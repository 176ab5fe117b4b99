"""Shadow mode under pgbench (PostgreSQL's own benchmark client) on the real stack.

`pgbench -i -s 1` fills pgbench_accounts (100k rows), _branches and _tellers in a schema of their
own; Debezium's initial snapshot is the backfill; then pgbench's TPC-B-like load runs for 20 s
(shortened from the issue's 60 s, and rate-limited with -R, to keep the suite's CI time modest;
PARITY_PGBENCH_SECONDS / PARITY_PGBENCH_RATE change that). After the stream drains, every row of
Postgres is compared with every item of DynamoDB: zero drift. pgbench_history has no primary key
and is not mapped (a table without one is refused at config check).

PARITY_PGBENCH_ACCOUNTS=N keeps only N accounts after `pgbench -i`, for quick local runs.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import time
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import unique
from tests.integration.test_shadow import (
    create_table,
    outcomes,
    scan_all,
    shadow_config,
    summed,
    wait_drained,
    with_group,
)
from tests.integration.verify_harness import DaemonThread, start_daemon_process, wait_for

pytestmark = pytest.mark.integration

SECONDS = int(os.environ.get("PARITY_PGBENCH_SECONDS", "20"))
RATE = int(os.environ.get("PARITY_PGBENCH_RATE", "100"))  # transactions per second (3 mapped changes each)
ACCOUNTS = int(os.environ.get("PARITY_PGBENCH_ACCOUNTS", "0"))  # 0: all of them (100k at -s 1)

# pgbench table -> (key column, DynamoDB key prefix, mapped columns)
TABLES = {
    "pgbench_accounts": ("aid", "ACC#", ("aid", "bid", "abalance", "filler")),
    "pgbench_branches": ("bid", "BR#", ("bid", "bbalance", "filler")),
    "pgbench_tellers": ("tid", "TE#", ("tid", "bid", "tbalance", "filler")),
}


def _pgbench() -> str:
    found = shutil.which("pgbench") or "/usr/lib/postgresql/15/bin/pgbench"
    if not Path(found).exists():
        pytest.skip("pgbench is not installed (it ships with PostgreSQL's server binaries)")
    return found


def _env(pg: Any, schema: str) -> dict[str, str]:
    url = urlsplit(pg.dsn)
    return {**os.environ, "PGHOST": url.hostname or "127.0.0.1", "PGPORT": str(url.port),
            "PGUSER": url.username or "postgres", "PGDATABASE": (url.path or "/postgres").lstrip("/"),
            "PGOPTIONS": f"-c search_path={schema}"}


def _load(pg: Any, schema: str, seconds: int = SECONDS) -> subprocess.Popen[bytes]:
    return subprocess.Popen([_pgbench(), "-n", "-c", "2", "-j", "1", "-T", str(seconds), "-R", str(RATE)],
                            env=_env(pg, schema), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


class Bench:
    """A pgbench schema, its three target tables and a shadow-mode config for them."""

    def __init__(self, pg: Any, kafka: Any, dynamodb: Any, bridge_factory: Any, state_dir: Path) -> None:
        self.pg = pg
        self.dynamodb = dynamodb
        self.schema = unique("pgb")
        with pg.connect() as conn:
            conn.execute(f"CREATE SCHEMA {self.schema}")
        init = subprocess.run([_pgbench(), "-i", "-s", "1", "-q"], env=_env(pg, self.schema),
                              capture_output=True, timeout=300, input=b"")
        assert init.returncode == 0, init.stderr.decode(errors="replace")
        if ACCOUNTS:
            with pg.connect() as conn:
                conn.execute(f"DELETE FROM {self.schema}.pgbench_accounts WHERE aid > %s", (ACCOUNTS,))
        self.targets = {t: f"{t}_{self.schema}" for t in TABLES}
        mappings = []
        for table, (key, prefix, columns) in TABLES.items():
            create_table(dynamodb, self.targets[table])
            mappings.append({"source": f"{self.schema}.{table}", "primary_key": [key], "target": self.targets[table],
                             "mode": "shadow", "keys": {"PK": f"{prefix}{{{key}}}"},
                             "columns": {c: {} for c in columns}})
        self.config, self.config_path = shadow_config(
            pg=pg, kafka=kafka, dynamodb=dynamodb, state_dir=state_dir, prefix=unique("cdc"), tables=mappings,
            daemon={"dynamo_concurrency": 16},
        )
        with pg.connect() as conn:
            self.rows = conn.execute(f"SELECT count(*) FROM {self.schema}.pgbench_accounts").fetchone()[0]  # type: ignore[index]
        self.bridge = bridge_factory([m["source"] for m in mappings], topic_prefix=self.config.kafka.topic_prefix,
                                     wait=False)
        self.bridge.wait_streaming(600)  # the 100k-row snapshot comes first; slow on a busy machine

    def expected(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Every Postgres row as the item shadow mode must have written (NULL: no attribute)."""
        out: dict[str, dict[str, dict[str, Any]]] = {}
        with self.pg.connect() as conn:
            for table, (key, prefix, columns) in TABLES.items():
                items = out.setdefault(self.targets[table], {})
                for row in conn.execute(f"SELECT {', '.join(columns)} FROM {self.schema}.{table}"):
                    item = {c: v for c, v in zip(columns, row, strict=True) if v is not None}
                    item["PK"] = f"{prefix}{item[key]}"
                    items[f"{item['PK']}|"] = item
        return out

    def dump(self) -> dict[str, dict[str, dict[str, Any]]]:
        client = self.dynamodb.client()
        return {t: scan_all(client, t) for t in self.targets.values()}

    def drift(self) -> dict[str, Any]:
        """Missing, unexpected and different items per table (the version attribute aside)."""
        actual = self.dump()
        report: dict[str, Any] = {}
        for target, expected in self.expected().items():
            got = {k: {a: (int(v) if isinstance(v, Decimal) else v) for a, v in it.items() if a != "_parity_version"}
                   for k, it in actual[target].items()}
            missing = sorted(set(expected) - set(got))
            extra = sorted(set(got) - set(expected))
            differ = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
            if missing or extra or differ:
                report[target] = {"missing": missing[:5], "extra": extra[:5], "differ": differ[:5],
                                  "counts": (len(missing), len(extra), len(differ))}
        return report

    def drained(self, group: str, timeout: float = 600) -> int:
        # At least the snapshot must be in the topics before "everything committed" means anything.
        return wait_drained(self.pg_kafka, group, self.bridge.topics, timeout, at_least=self.rows)

    pg_kafka = ""


@pytest.fixture
def bench(pg: Any, kafka: Any, dynamodb: Any, bridge_factory: Any, tmp_path: Path) -> Bench:
    b = Bench(pg, kafka, dynamodb, bridge_factory, tmp_path / "state")
    b.pg_kafka = kafka.bootstrap
    return b


def test_pgbench_backfill_and_load_end_with_zero_drift_and_a_replay_changes_nothing(bench: Bench) -> None:
    with DaemonThread(bench.config):
        load = _load(bench.pg, bench.schema)
        out, _ = load.communicate(timeout=SECONDS + 120)
        assert load.returncode == 0, out.decode(errors="replace")
        started = time.monotonic()
        total = bench.drained(bench.config.kafka.group_id)
        drain_s = time.monotonic() - started
    assert bench.drift() == {}
    counts = outcomes(bench.config)
    accounts = f"{bench.schema}.pgbench_accounts"
    status = {t: (row["snapshot_rows"], row["snapshot_done"]) for t, row in _status(bench).items()}
    # The backfill: every account was read by the snapshot and counted as such.
    assert status[accounts] == (bench.rows, True)
    assert summed(counts, "failed") == 0 and summed(counts, "dead_letter") == 0
    assert counts[accounts]["applied"] >= bench.rows
    before = bench.dump()

    # Replay every topic from offset 0 under a new group, with the same state (and graveyard).
    replay_cfg, _ = with_group(bench.config_path, unique("replay"))
    with DaemonThread(replay_cfg):
        bench.drained(replay_cfg.kafka.group_id)
    after = bench.dump()
    assert after == before  # not one item changed, the version attributes included
    again = outcomes(replay_cfg)
    applied = summed(again, "applied") - summed(counts, "applied")
    stale = summed(again, "stale_skipped") - summed(counts, "stale_skipped")
    print(f"\nfirst pass: {total} records, drained {drain_s:.1f}s after the load; outcomes {counts}")
    print(f"replay: applied {applied}, stale_skipped {stale}")
    assert applied == 0
    assert stale >= bench.rows


def _status(bench: Bench) -> dict[str, Any]:
    from parity.daemon.status import collect_status

    tables: dict[str, Any] = collect_status(bench.config)["tables"]
    return tables


KILLS = 5
STARTED = re.compile(r'"event":\s*"started"')  # log lines are compact JSON (no space after ':')


def test_pgbench_with_the_daemon_killed_5_times_at_random_points_ends_with_zero_drift(
    bench: Bench, tmp_path: Path
) -> None:
    """kill -9 five times, at random points of the backfill, the load and the drain (seeded by
    PARITY_FAULT_SEED): every record is applied and committed, and DynamoDB equals Postgres."""
    rng = random.Random(int(os.environ.get("PARITY_FAULT_SEED", "20261122")))
    log = tmp_path / "daemon.log"
    proc = start_daemon_process(bench.config_path, log)
    load = _load(bench.pg, bench.schema)
    kills: list[float] = []
    started = time.monotonic()
    try:
        for kill in range(KILLS):
            # Each kill lands on a daemon that is up (its start-up alone takes seconds on a busy
            # machine), then anywhere in its group join, the backfill, the load or the drain.
            wait_for(lambda k=kill: len(STARTED.findall(log.read_text())) > k, 120, "the daemon to start")
            time.sleep(rng.uniform(0.5, max(1.0, SECONDS / 4)))
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            kills.append(round(time.monotonic() - started, 1))
            proc = start_daemon_process(bench.config_path, log)
        out, _ = load.communicate(timeout=SECONDS + 120)
        assert load.returncode == 0, out.decode(errors="replace")
        records = bench.drained(bench.config.kafka.group_id)  # committed offsets reached every end
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        for p in (proc, load):
            if p.poll() is None:
                p.kill()
    drift = bench.drift()
    counts = outcomes(bench.config)
    print(f"FAULT-RESULT kill-9 x{KILLS} (shadow, pgbench): records={records} kills_at_s={kills} "
          f"applied={summed(counts, 'applied')} stale_skipped={summed(counts, 'stale_skipped')} "
          f"lost=0 drift_items={sum(r['counts'][0] + r['counts'][1] + r['counts'][2] for r in drift.values())}")
    assert drift == {}
    assert summed(counts, "failed") == 0 and summed(counts, "dead_letter") == 0
    assert len(STARTED.findall(log.read_text())) == KILLS + 1
