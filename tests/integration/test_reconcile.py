"""The reconciler on the real stack: injected drift is found exactly, in-flight rows are not
reported, a killed run resumes to the same report, and a repair leaves zero drift."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from parity.adapters.dynamodb import DynamoStore
from parity.adapters.state import StateStore
from parity.core.mapping import ItemMapper
from parity.core.values import item_to_wire
from parity.metrics.catalog import Metrics
from parity.reconcilers.checkpoint import Checkpoint
from parity.reconcilers.reconcile import Reconciler, write_report
from parity.reconcilers.repair import Repairer
from parity.reconcilers.report import exit_code
from parity.reconcilers.schedule import ReconcileSchedule
from tests.conftest import unique
from tests.integration.reconcile_harness import (
    ACCOUNTS_SQL,
    ROOT,
    Writer,
    accounts_mapping,
    config_for,
    create_table,
    fill_target,
    put_items,
    representation_only,
    write_config,
)

pytestmark = pytest.mark.integration

ROWS = 20_000
VALUE_IDS = (101, 202, 303, 404, 505)
MISSING_IDS = (1001, 1002, 1003, 1004, 1005)
UNEXPECTED_IDS = (30_001, 30_002, 30_003, 30_004, 30_005)
UNMAPPED_KEYS = ("OTHER#1", "OTHER#2", "OTHER#3")
RESUME_RCU = 20  # a slow Scan (about 9 s for 6000 items), so the run can be killed half way


def key(i: int) -> dict[str, Any]:
    return {"PK": {"S": f"ACC#{i}"}}


class Deployment:
    def __init__(self, pg: Any, dynamodb: Any, tmp: Path, rows: int, **reconcile: Any) -> None:
        self.pg, self.dynamodb = pg, dynamodb
        self.schema = unique("rec")
        self.target = f"Accounts_{self.schema}"
        with pg.connect() as conn:
            conn.execute(ACCOUNTS_SQL.format(schema=self.schema, rows=rows))
            conn.execute(f"ANALYZE {self.schema}.accounts")
        create_table(dynamodb, self.target)
        self.config, self.raw = config_for(
            pg, dynamodb, [accounts_mapping(self.schema, self.target)], tmp / "reports", **reconcile
        )
        self.mapping = self.config.tables[0]
        self.mapper = ItemMapper(self.mapping)
        self.store = DynamoStore(dynamodb.client(), concurrency=8)
        fill_target(pg, self.store, self.mapping)

    def row(self, i: int) -> dict[str, Any]:
        with self.pg.connect() as conn:
            cur = conn.execute(f"SELECT id, region, balance, note, payload, updated_at FROM {self.schema}.accounts "
                               "WHERE id = %s", (i,))
            names = [d.name for d in cur.description]
            values = cur.fetchone()
        return dict(zip(names, values, strict=True))

    def put(self, item: dict[str, Any]) -> None:
        self.store.call("PutItem", TableName=self.target, Item=item_to_wire(item))

    def inject(self) -> None:
        """Corrupt the target (and one Postgres value) on purpose; plus representation-only noise."""
        with self.pg.connect() as conn:
            conn.execute(f"UPDATE {self.schema}.accounts SET balance = 10.01 WHERE id = 101")
        subtle = self.mapper.item(self.row(101))
        subtle["balance"] = Decimal("10.10")  # 10.01 in Postgres: a subtle value mismatch
        self.put(subtle)
        region = self.mapper.item(self.row(202))
        region["region"] = "EU"
        self.put(region)
        note = self.mapper.item(self.row(303))
        del note["note"]
        self.put(note)
        payload = self.mapper.item(self.row(404))
        payload["payload"] = '{"score":0.4,"tags":["a",2],"tier":9}'
        self.put(payload)
        moment = self.mapper.item(self.row(505))
        moment["updated_at"] = "2030-01-01T00:00:00.000Z"
        self.put(moment)
        for i in MISSING_IDS:
            self.store.call("DeleteItem", TableName=self.target, Key=item_to_wire({"PK": f"ACC#{i}"}))
        for i in UNEXPECTED_IDS:
            self.put({"PK": f"ACC#{i}", "EntityType": "ACCOUNT", "id": Decimal(i), "region": "eu",
                      "balance": Decimal(1), "payload": "{}", "updated_at": "2024-01-01T00:00:00Z"})
        for k in UNMAPPED_KEYS:
            self.put({"PK": k, "kind": "session"})
        # Representation-only differences: must not be reported.
        noisy = [representation_only(self.mapper.item(self.row(i))) for i in range(2000, 2100)]
        empty_notes = []
        for i in (14, 21, 28):
            item = self.mapper.item(self.row(i))
            item["note"] = ""  # '' in Postgres, "" instead of absent in DynamoDB: empty_string_as_null
            empty_notes.append(item)
        put_items(self.store, self.target, noisy + empty_notes)

    def reconciler(self, store: Any = None, **kw: Any) -> Reconciler:
        return Reconciler(self.config, dynamo=store or self.store, dsn=self.pg.dsn, **kw)


def drift_keys(report: dict[str, Any], source: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for d in report["tables"][source]["drift"]:
        out.setdefault(d["kind"], set()).add(d["key"]["PK"]["S"])
    return out


EXPECTED = {
    "value_mismatch": {f"ACC#{i}" for i in VALUE_IDS},
    "missing_in_target": {f"ACC#{i}" for i in MISSING_IDS},
    "unexpected_in_target": {f"ACC#{i}" for i in UNEXPECTED_IDS},
}


@pytest.fixture
def deploy(pg: Any, dynamodb: Any, tmp_path: Path) -> Iterator[Callable[..., Deployment]]:
    made: list[Deployment] = []

    def make(rows: int = ROWS, **reconcile: Any) -> Deployment:
        d = Deployment(pg, dynamodb, tmp_path, rows, **reconcile)
        made.append(d)
        return d

    yield make
    for d in made:
        d.store.close()
        d.dynamodb.client().delete_table(TableName=d.target)
        with pg.connect() as conn:
            conn.execute(f"DROP SCHEMA {d.schema} CASCADE")


def test_injected_drift_is_reported_exactly_while_a_writer_changes_other_rows(
    deploy: Callable[..., Deployment],
) -> None:
    d = deploy(segments=4, workers=4)
    d.inject()
    injected = {*VALUE_IDS, *MISSING_IDS, *range(2000, 2100), 14, 21, 28}
    busy = [i for i in range(5000, ROWS) if i not in injected]
    metrics = Metrics(CollectorRegistry(), tables=[d.mapping.source])
    with Writer(d.pg, d.store, d.mapping, busy) as writer:
        report = d.reconciler(metrics=metrics).run()
    assert writer.changes > 0
    table = report["tables"][d.mapping.source]
    assert drift_keys(report, d.mapping.source) == EXPECTED
    assert table["rows_postgres"] == ROWS
    assert table["items_dynamodb"] == ROWS  # 5 missing, 5 unexpected
    unmapped = report["targets"][d.target]["unmapped"]
    assert unmapped["count"] == len(UNMAPPED_KEYS)
    assert {k["PK"]["S"] for k in unmapped["sample"]} == set(UNMAPPED_KEYS)
    by_key = {x["key"]["PK"]["S"]: x for x in table["drift"]}
    assert by_key["ACC#101"]["diffs"] == [{"attribute": "balance", "expected": "10.01", "actual": "10.1"}]
    assert [x["attribute"] for x in by_key["ACC#303"]["diffs"]] == ["note"]
    assert by_key["ACC#101"]["primary_key"] == {"id": 101}  # typed: a bigint is a JSON number
    assert exit_code(report) == 1
    sample = metrics.registry.get_sample_value
    labels = {"table": d.mapping.source, "kind": "missing_in_target"}
    assert sample("parity_reconcile_last_run_drift_keys", labels) == len(MISSING_IDS)
    assert sample("parity_reconcile_runs_total", {"table": d.mapping.source, "outcome": "success"}) == 1
    assert sample("parity_reconcile_rows_compared_total", {"table": d.mapping.source}) == 2 * ROWS


def test_repair_dry_run_lists_the_writes_and_execute_leaves_zero_drift(
    deploy: Callable[..., Deployment], tmp_path: Path
) -> None:
    d = deploy(rows=3000, segments=2, workers=2)
    d.inject()
    report = d.reconciler(pg_processes=True).run()  # Postgres partitions in worker processes
    assert drift_keys(report, d.mapping.source) == EXPECTED
    # The daemon's periodic runs leave their summary in the state store.
    state = StateStore(tmp_path / "state.db")
    try:
        summary = ReconcileSchedule(d.config, state=state, dynamo=d.store).run_once()
        assert summary is not None and summary["drift_total"] == 15
        assert state.facts()["last_reconcile"]["tables"][d.mapping.source] == report["tables"][d.mapping.source][
            "drift_counts"]
    finally:
        state.close()
    # A target-only attribute (a TTL the application sets) on a drifted item must survive repair.
    ttl_key = key(VALUE_IDS[0])
    d.store.call("UpdateItem", TableName=d.target, Key=ttl_key, UpdateExpression="SET expires_at = :t",
                 ExpressionAttributeValues={":t": {"N": "1900000000"}})
    repairer = Repairer(d.config, dynamo=d.store, dsn=d.pg.dsn, rate=500)
    lines: list[str] = []
    dry = repairer.run(report, execute=False, echo=lines.append)
    puts = sorted(line.split(" ")[3] for line in lines if line.startswith("would PUT"))
    updates = sorted(line.split(" ")[3] for line in lines if line.startswith("would UPDATE"))
    assert len(puts) == len(MISSING_IDS)  # absent items are put whole
    assert len(updates) == len(VALUE_IDS)  # present ones get their mapped attributes updated
    assert not [line for line in lines if "DELETE" in line]  # no --delete-unexpected
    assert dry["skipped_unexpected"] == len(UNEXPECTED_IDS)
    assert any('"balance":{"N":"10.01"}' in line and ":v0" in line for line in lines)
    # Dry run changed nothing.
    assert drift_keys(d.reconciler().run(), d.mapping.source) == EXPECTED

    done = repairer.run(report, execute=True, delete_unexpected=True, echo=lambda _line: None)
    assert done["put"] == len(MISSING_IDS) and done["updated"] == len(VALUE_IDS)
    kept = d.store.call("GetItem", TableName=d.target, Key=ttl_key, ConsistentRead=True)["Item"]
    assert kept["expires_at"] == {"N": "1900000000"}
    assert done["deleted"] == len(UNEXPECTED_IDS)
    assert done["failed"] == 0 and done["skipped_changed"] == 0
    after = d.reconciler().run()
    assert drift_keys(after, d.mapping.source) == {}
    # Only the items no mapping routes are left, counted as not compared: the run still fails.
    assert after["not_compared_total"] == len(UNMAPPED_KEYS)
    assert exit_code(after) == 1


def test_repair_skips_an_item_that_changed_since_the_report(deploy: Callable[..., Deployment]) -> None:
    d = deploy(rows=2200, segments=1, workers=1)
    d.inject()
    report = d.reconciler().run()
    changed = d.mapper.item(d.row(202))
    changed["region"] = "somewhere else"  # another writer fixed it differently after the report
    d.put(changed)
    done = Repairer(d.config, dynamo=d.store, dsn=d.pg.dsn, rate=500).run(report, execute=True, echo=lambda _: None)
    assert done["skipped_changed"] == 1
    got = d.store.get(d.target, {"PK": "ACC#202"})
    assert got is not None and got["region"] == "somewhere else"


class CountingStore(DynamoStore):
    """Counts Scan pages per segment, to prove a resume does not reread finished segments."""

    def __init__(self, client: Any) -> None:
        super().__init__(client, concurrency=4)
        self.scans: dict[int, int] = {}

    def call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        if operation == "Scan":
            self.scans[kwargs["Segment"]] = self.scans.get(kwargs["Segment"], 0) + 1
        return super().call(operation, **kwargs)


def test_a_killed_run_resumes_without_rereading_finished_segments_and_reports_the_same(
    deploy: Callable[..., Deployment], tmp_path: Path
) -> None:
    d = deploy(rows=6000, segments=4, workers=2, page_limit=100, read_rate_limit=RESUME_RCU)
    d.inject()
    full = d.reconciler().run()
    config_path = write_config(d.raw, tmp_path / "parity.yaml")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "parity.cli", "reconcile", "--config", str(config_path), "--once"],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        cp = None
        while time.monotonic() < deadline:
            cp = Checkpoint.latest_incomplete(Path(d.config.reconcile.report_dir), d.target)
            units = (cp.data["units"] if cp else {})
            done_ddb = [u for u, v in units.items() if u.startswith("ddb-") and v.get("done")]
            if done_ddb:  # usually others are half way (same rate limit): those continue from their LEK
                break
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.05)
        else:
            pytest.fail("no segment finished in time")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert cp is not None
    data = orjson.loads(cp.path.read_bytes())
    finished = {int(u.split("-")[1]) for u, v in data["units"].items() if u.startswith("ddb-") and v.get("done")}
    assert finished and not data["complete"]

    store = CountingStore(d.dynamodb.client())
    try:
        resumed = d.reconciler(store=store).run(resume=True)
    finally:
        store.close()
    assert not finished & set(store.scans), f"finished segments {finished} scanned again: {store.scans}"
    assert resumed["targets"][d.target]["run_dir"] == str(cp.run_dir)
    for field in ("rows_postgres", "items_dynamodb", "drift_counts"):
        assert resumed["tables"][d.mapping.source][field] == full["tables"][d.mapping.source][field]
    assert resumed["tables"][d.mapping.source]["drift"] == full["tables"][d.mapping.source]["drift"]
    assert resumed["targets"][d.target]["unmapped"]["count"] == len(UNMAPPED_KEYS)
    assert write_report(resumed, tmp_path).exists()



def test_cli_reconcile_exits_1_on_drift_and_repair_dry_run_prints_writes(
    deploy: Callable[..., Deployment], tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from parity.cli import app

    d = deploy(rows=2200, segments=2, workers=2)
    d.inject()
    config_path = write_config(d.raw, tmp_path / "parity.yaml")
    runner = CliRunner()
    result = runner.invoke(app, ["reconcile", "--config", str(config_path), "--once", "--json"])
    assert result.exit_code == 1, result.output
    report = orjson.loads(result.stdout)
    assert drift_keys(report, d.mapping.source) == EXPECTED
    report_path = next(Path(d.config.reconcile.report_dir).glob("reconcile-*.json"))
    result = runner.invoke(app, ["repair", "--config", str(config_path), "--report", str(report_path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert result.stdout.count("would PUT") == len(MISSING_IDS)
    assert result.stdout.count("would UPDATE") == len(VALUE_IDS)
    both = runner.invoke(app, ["repair", "--config", str(config_path), "--report", str(report_path),
                               "--dry-run", "--execute"])
    assert both.exit_code == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("postgres: {}\n")
    assert runner.invoke(app, ["reconcile", "--config", str(bad), "--once"]).exit_code == 2


def test_cli_reconcile_as_a_job_publishes_its_results_to_a_textfile_and_logs_json_progress(
    deploy: Callable[..., Deployment], tmp_path: Path
) -> None:
    from prometheus_client.parser import text_string_to_metric_families
    from typer.testing import CliRunner

    from parity.cli import app

    d = deploy(rows=2200, segments=2, workers=2)
    d.inject()
    config_path = write_config(d.raw, tmp_path / "parity.yaml")
    textfile = tmp_path / "textfile" / "parity_reconcile.prom"
    textfile.parent.mkdir()
    before = time.time()
    result = CliRunner().invoke(app, ["reconcile", "--config", str(config_path), "--once",
                                      "--metrics-textfile", str(textfile), "--expected-interval", "86400"])
    assert result.exit_code == 1, result.output
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(textfile.read_text()) for s in f.samples}
    source = d.mapping.source
    assert samples[("parity_reconcile_interval_seconds", ())] == 86400
    assert samples[("parity_reconcile_last_success_timestamp_seconds", (("table", source),))] >= before
    assert samples[("parity_reconcile_runs_total", (("outcome", "success"), ("table", source)))] == 1
    for kind, keys in EXPECTED.items():
        assert samples[("parity_reconcile_last_run_drift_keys", (("kind", kind), ("table", source)))] == len(keys)
    # stdout is not a terminal here: progress went to stderr as JSON log lines.
    progress = [orjson.loads(line) for line in result.stderr.splitlines() if '"reconcile progress"' in line]
    assert {p["state"] for p in progress} >= {"begin", "end"}
    assert progress[-1]["rows_read"] > 0
