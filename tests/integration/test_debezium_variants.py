"""The Debezium deployments teams already run, on the real stack: ONE embedded Debezium engine
(the devstack bridge) captures several tables, each with its own transform chosen by a
TopicNameMatches predicate, so every variant costs one engine start:

  env_<s>   the default envelope (the control)
  fa_<s>    flattened, deletes rewritten (`__deleted`), add.fields op,lsn,source.ts_ms
  fb_<s>    flattened, deletes dropped, nothing added (ordered by Kafka offset)
  fc_<s>    flattened, deletes as tombstones only, add.fields op
  fd_<s>    envelope, routed by RegexRouter onto a shared topic with an unmapped table (fx_<s>)
  fs_<s>    flattened with lsn (shadow mode applies it)
  fr_<s>    a mapping that dead-letters every record, replayed after it is fixed

The same workload runs on every table, and the test writes DynamoDB with raw boto3 like the
application would, with the same three injected drifts. Each variant must report exactly the
control's drift, except what its variant loses by design (docs/debezium.md): with deletes
dropped, the leftover of a deleted row is not seen and a deleted row reads as missing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from parity.config_loader import load_config
from tests.conftest import unique
from tests.integration.payments_harness import FAST_GRACE
from tests.integration.verify_harness import DaemonThread, create_topics, drift_set, settle

pytestmark = pytest.mark.integration

UNWRAP = "io.debezium.transforms.ExtractNewRecordState"
# (table tag, transforms.unwrap settings, parity's event_format settings); None: no transform.
FLATTENED: dict[str, tuple[dict[str, str], dict[str, Any]]] = {
    "fa": ({"add.fields": "op,lsn,source.ts_ms", "delete.tombstone.handling.mode": "rewrite"},
           {"add_fields": "op,lsn,source.ts_ms", "delete_handling": "rewrite"}),
    "fb": ({"delete.tombstone.handling.mode": "drop"}, {"delete_handling": "drop", "accept_lost_deletes": True}),
    "fc": ({"add.fields": "op", "delete.tombstone.handling.mode": "tombstone"},
           {"add_fields": ["op"], "delete_handling": "tombstone"}),
    "fs": ({"add.fields": "op,lsn", "delete.tombstone.handling.mode": "rewrite"},
           {"add_fields": "op,lsn", "delete_handling": "rewrite"}),
}
VERIFIED = ("env", "fa", "fb", "fc", "fd")


def _item(id_: int, owner: str, amount: int) -> dict[str, Any]:
    return {"PK": {"S": f"T#{id_}"}, "id": {"N": str(id_)}, "Owner": {"S": owner}, "Amount": {"N": str(amount)}}


def _mapping(source: str, target: str, **extra: Any) -> dict[str, Any]:
    return {"source": source, "primary_key": ["id"], "target": target, "keys": {"PK": "T#{id}"},
            "columns": {"id": {}, "owner": {"name": "Owner"}, "amount": {"name": "Amount"}},
            **FAST_GRACE, **extra}


class Variants:
    def __init__(self, pg: Any, kafka: Any, dynamodb: Any, tmp_path: Path) -> None:
        self.pg, self.kafka, self.dynamodb, self.tmp = pg, kafka, dynamodb, tmp_path
        self.s = unique("v")
        self.prefix = unique("dbz")
        self.routed = f"{self.prefix}.routed"
        self.ddb = dynamodb.client()
        self.tables = {tag: f"{tag}_{self.s}" for tag in (*VERIFIED, "fx", "fs", "fr")}

    def topic(self, tag: str) -> str:
        return f"{self.prefix}.public.{self.tables[tag]}"

    def engine_properties(self) -> dict[str, str]:
        props: dict[str, str] = {}
        transforms, predicates = [], []
        for tag, (unwrap, _) in FLATTENED.items():
            transforms.append(f"unwrap_{tag}")
            predicates.append(f"is_{tag}")
            props[f"transforms.unwrap_{tag}.type"] = UNWRAP
            props[f"transforms.unwrap_{tag}.predicate"] = f"is_{tag}"
            props.update({f"transforms.unwrap_{tag}.{k}": v for k, v in unwrap.items()})
            props[f"predicates.is_{tag}.type"] = "org.apache.kafka.connect.transforms.predicates.TopicNameMatches"
            props[f"predicates.is_{tag}.pattern"] = re.escape(self.topic(tag))
        transforms.append("route")
        props["transforms.route.type"] = "org.apache.kafka.connect.transforms.RegexRouter"
        props["transforms.route.regex"] = f"{re.escape(self.prefix)}\\.public\\.(fd|fx)_{self.s}"
        props["transforms.route.replacement"] = self.routed
        props["transforms"] = ",".join(transforms)
        props["predicates"] = ",".join(predicates)
        return props

    def config_doc(self, *, fixed: bool) -> dict[str, Any]:
        tables = []
        for tag in VERIFIED:
            extra: dict[str, Any] = {}
            if tag in FLATTENED:
                extra = {"event_format": "flattened", "flattened": FLATTENED[tag][1]}
            if tag == "fd":
                extra = {"topic": self.routed}
            tables.append(_mapping(f"public.{self.tables[tag]}", self.tables[tag].upper(), **extra))
        tables.append(_mapping(f"public.{self.tables['fs']}", self.tables["fs"].upper(), mode="shadow",
                               event_format="flattened", flattened=FLATTENED["fs"][1]))
        fr = _mapping(f"public.{self.tables['fr']}", self.tables["fr"].upper())
        if not fixed:
            fr["columns"]["amount"] = {"name": "Amount", "type": "date_iso"}  # every record unmappable
        tables.append(fr)
        return {
            "postgres": {"dsn": self.pg.dsn},
            "kafka": {"bootstrap_servers": self.kafka.bootstrap, "topic_prefix": self.prefix,
                      "group_id": unique("grp"), "session_timeout_ms": 6000,
                      "topic_pattern": re.escape(self.routed),
                      "drift_topic": f"{self.prefix}.drift", "dead_letter_topic": f"{self.prefix}.dlq"},
            "dynamodb": {"endpoint": self.dynamodb.endpoint, "region": "us-east-1"},
            "daemon": {"state_dir": str(self.tmp / "state"), "batch_max_wait_ms": 100,
                       "drift_log": str(self.tmp / "drift.jsonl")},
            "tables": tables,
        }

    def write_config(self, name: str, *, fixed: bool) -> Path:
        path = self.tmp / name
        path.write_text(yaml.safe_dump(self.config_doc(fixed=fixed)))
        return path

    def create(self) -> None:
        with self.pg.connect() as conn:
            for name in self.tables.values():
                conn.execute(f"CREATE TABLE public.{name} (id int PRIMARY KEY, owner text, amount int)")
        for tag, name in self.tables.items():
            if tag != "fx":
                self.ddb.create_table(  # type: ignore[attr-defined]
                    TableName=name.upper(), BillingMode="PAY_PER_REQUEST",
                    KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}],
                    AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}])
        create_topics(self.kafka, [self.routed, f"{self.prefix}.dlq", f"{self.prefix}.drift"], partitions=2)

    def workload(self) -> None:
        """The application: DynamoDB first (so no write is late), then Postgres; three injected
        drifts per table: id 2 a wrong value, id 3 never written, id 6 left behind after its delete."""
        for tag in VERIFIED:
            target = self.tables[tag].upper()
            for id_ in (1, 2, 4, 6):
                owner = {2: "WRONG", 4: "o4-new"}.get(id_, f"o{id_}")
                self.ddb.put_item(TableName=target, Item=_item(id_, owner, 10 * id_))  # type: ignore[attr-defined]
        for id_ in (1, 2, 3):  # the table whose mapping dead-letters: DynamoDB is right
            self.ddb.put_item(TableName=self.tables["fr"].upper(),  # type: ignore[attr-defined]
                              Item=_item(id_, f"o{id_}", 10 * id_))
        with self.pg.connect() as conn:
            for tag in (*VERIFIED, "fs"):
                t = self.tables[tag]
                for id_ in range(1, 7):
                    conn.execute(f"INSERT INTO public.{t} VALUES (%s, %s, %s)", (id_, f"o{id_}", 10 * id_))
                conn.execute(f"UPDATE public.{t} SET owner = 'o4-new' WHERE id = 4")
                conn.execute(f"DELETE FROM public.{t} WHERE id IN (5, 6)")
            for id_ in (1, 2):
                conn.execute(f"INSERT INTO public.{self.tables['fx']} VALUES (%s, 'x', 1)", (id_,))
            for id_ in (1, 2, 3):
                conn.execute(f"INSERT INTO public.{self.tables['fr']} VALUES (%s, %s, %s)", (id_, f"o{id_}", 10 * id_))

    def expected_drift(self, tag: str) -> list[tuple[str, str, str]]:
        kinds = {2: "value_mismatch", 3: "missing_in_target", 6: "unexpected_in_target"}
        if tag == "fb":
            # Deletes dropped by the transform: the leftover of a deleted row cannot be seen, and a
            # deleted row (5) whose insert was verified reads as missing, its delete never arriving.
            del kinds[6]
            kinds[5] = "missing_in_target"
        source = f"public.{self.tables[tag]}"
        return sorted((source, json.dumps({"PK": f"T#{i}"}), kind) for i, kind in kinds.items())


def test_every_variant_finds_the_envelopes_drift_shadow_applies_and_a_fixed_dead_letter_replays(
    pg: Any, kafka: Any, dynamodb: Any, bridge_factory: Any, tmp_path: Path
) -> None:
    v = Variants(pg, kafka, dynamodb, tmp_path)
    v.create()
    config_path = v.write_config("parity.yaml", fixed=False)
    config = load_config(config_path)
    bridge = bridge_factory([f"public.{t}" for t in v.tables.values()], topic_prefix=v.prefix,
                            extra_properties=v.engine_properties())
    with DaemonThread(config) as runner:
        v.workload()
        # Records: control/routed 11 each (tombstones), rewrite 9, drop 7, tombstone-only 9,
        # shadow 9, unmapped 2, dead-lettered 3.
        topics = [*bridge.topics, v.routed]
        total = settle(config, kafka.bootstrap, topics, runner.daemon, at_least=11 + 11 + 9 + 7 + 9 + 9 + 2 + 3,
                       timeout=180)
        counts = runner.daemon.state.outcome_counts()

    found = drift_set(config)
    for tag in VERIFIED:
        source = f"public.{v.tables[tag]}"
        assert [d for d in found if d[0] == source] == v.expected_drift(tag), tag
    assert {d[0] for d in found} <= {f"public.{v.tables[t]}" for t in VERIFIED}
    # Every record has one outcome: the routed table nobody mapped is counted, not dead-lettered.
    assert sum(n for c in counts.values() for n in c.values()) == total
    assert counts[f"public.{v.tables['fx']}"] == {"unmapped": 2}
    fr = f"public.{v.tables['fr']}"
    assert counts[fr] == {"dead_letter": 3}
    assert sum(c.get("dead_letter", 0) for t, c in counts.items() if t != fr) == 0
    # Shadow mode with the LSN added: the shadow table holds the final rows, deletes applied.
    shadow = v.tables["fs"].upper()
    items = v.ddb.scan(TableName=shadow, Limit=100)["Items"]  # type: ignore[attr-defined]
    assert sorted((i["PK"]["S"], i["Owner"]["S"]) for i in items) == [
        ("T#1", "o1"), ("T#2", "o2"), ("T#3", "o3"), ("T#4", "o4-new")]

    # The mapping is fixed: each dead letter, re-read from Kafka at its position, now matches.
    fixed = v.write_config("fixed.yaml", fixed=True)
    runner_cli = CliRunner()
    from parity.cli import app

    first = runner_cli.invoke(app, ["replay", "--dlq", "-c", str(fixed), "--json"])
    assert first.exit_code == 0, first.output
    report = json.loads(first.output[first.output.index("{"):])
    assert report["outcomes"] == {"match": 3}
    assert all(r["table"] == fr and r["was"].startswith("unmappable:") for r in report["replayed"])
    again = runner_cli.invoke(app, ["replay", "--dlq", "-c", str(fixed), "--json"])
    assert json.loads(again.output[again.output.index("{"):])["outcomes"] == {"already_replayed": 3}
    # A record no longer in Kafka (past the partition's end here, as after retention) is not found.
    from parity.daemon.replay import fetch_record, replay_consumer

    consumer = replay_consumer(config)
    try:
        assert fetch_record(consumer, v.routed, 0, 10**6) is None
        topic, rest = report["replayed"][0]["position"].rsplit("[", 1)
        partition, offset = rest.split("]@")
        present = fetch_record(consumer, topic, int(partition), int(offset))
        assert present is not None and (present.topic, present.offset) == (topic, int(offset))
    finally:
        consumer.close()
    # Replays are kept apart: the daemon's counters still hold each record once, as dead_letter.
    from parity.adapters.state import StateStore
    from parity.daemon.run import state_path

    store = StateStore(state_path(config))
    try:
        assert store.outcome_counts()[fr] == {"dead_letter": 3}
    finally:
        store.close()
