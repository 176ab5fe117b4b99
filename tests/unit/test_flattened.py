"""Flattened events (ExtractNewRecordState), topic routing and what config check refuses.

Records are written by hand from Debezium's documented wire format (tests/debezium.py style),
never with parity's decoder; the real captured records are decoded in test_flattened_fixtures.py."""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

import orjson
import pytest

from parity.adapters.kafka import Record
from parity.core.config import FlattenedEvents
from parity.core.errors import ConfigError, DecodeError
from parity.core.events import ChangeEvent, Op, Skip, Tombstone
from parity.core.flattened import decode_flattened, peek_source
from parity.daemon.pipeline import Pipeline
from tests import debezium
from tests.fakes import FakeDynamoStore
from tests.unit.mapping_helpers import config, table_spec

pytestmark = pytest.mark.unit

REWRITE_LSN = FlattenedEvents(add_fields=("op", "lsn", "source.ts_ms"), delete_handling="rewrite")
BARE_DROP = FlattenedEvents(delete_handling="drop")
TOMBSTONES = FlattenedEvents(add_fields=("op",), delete_handling="tombstone")


def _flat(row: dict[str, Any], **meta: Any) -> bytes:
    return orjson.dumps({**row, **{f"__{k}": v for k, v in meta.items()}})


def _key(id_: int, **extra: Any) -> bytes:
    return orjson.dumps({"id": id_, **extra})


# ---- decoding ----------------------------------------------------------------------------------


def test_an_update_with_added_fields_carries_op_lsn_and_commit_time() -> None:
    value = _flat({"id": 1, "owner": "ada"}, op="u", lsn=4711, source_ts_ms=1700)
    event = decode_flattened("cdc.public.t", _key(1), value, None, REWRITE_LSN, "public.t")
    assert isinstance(event, ChangeEvent)
    assert (event.source, event.op, event.key, event.after, event.before) == (
        "public.t", Op.UPDATE, {"id": 1}, {"id": 1, "owner": "ada"}, None)
    assert (event.lsn, event.ts_ms, event.snapshot) == (4711, 1700, False)


def test_a_snapshot_row_is_known_by_its_op() -> None:
    event = decode_flattened("cdc.public.t", _key(1), _flat({"id": 1}, op="r", lsn=1), None, REWRITE_LSN)
    assert isinstance(event, ChangeEvent) and event.op is Op.READ and event.snapshot


def test_a_rewritten_delete_is_a_delete_keyed_by_the_old_rows_sent_columns() -> None:
    # REPLICA IDENTITY DEFAULT: the old row carries the key, the other columns null.
    value = _flat({"id": 7, "owner": None}, op="d", lsn=9, deleted="true")
    event = decode_flattened("cdc.public.t", _key(7), value, None, REWRITE_LSN, "public.t")
    assert isinstance(event, ChangeEvent)
    assert (event.op, event.before, event.after, event.row, event.lsn) == (Op.DELETE, {"id": 7}, None, None, 9)


def test_without_op_a_row_is_an_upsert_and_deleted_true_a_delete() -> None:
    flat = FlattenedEvents(delete_handling="rewrite")
    up = decode_flattened("cdc.public.t", _key(1), _flat({"id": 1, "owner": "x"}, deleted="false"), None, flat)
    gone = decode_flattened("cdc.public.t", _key(1), _flat({"id": 1, "owner": None}, deleted="true"), None, flat)
    assert isinstance(up, ChangeEvent) and up.op is Op.UPDATE and up.after == {"id": 1, "owner": "x"}
    assert up.lsn is None and not up.snapshot
    assert isinstance(gone, ChangeEvent) and gone.op is Op.DELETE


def test_a_tombstone_is_the_delete_when_deletes_arrive_as_tombstones_only() -> None:
    event = decode_flattened("cdc.public.t", _key(3), None, None, TOMBSTONES, "public.t")
    assert isinstance(event, ChangeEvent)
    assert (event.source, event.op, event.key, event.before) == ("public.t", Op.DELETE, {"id": 3}, None)
    assert event.lsn is None
    # With rewritten deletes the tombstone only follows the delete record: skipped.
    assert isinstance(decode_flattened("cdc.public.t", _key(3), None, None, REWRITE_LSN), Tombstone)


def test_schemaless_values_decode_with_the_mappings_type_hints() -> None:
    from parity.core.config import ColumnRule

    hints = {"amount": ColumnRule(pg_type="numeric", scale=2), "at": ColumnRule(pg_type="timestamp")}
    raw = base64.b64encode((12345).to_bytes(2, "big", signed=True)).decode()  # 123.45 at scale 2
    value = _flat({"id": 1, "amount": raw, "at": 1_700_000_000_000_000}, op="c")
    event = decode_flattened("cdc.public.t", _key(1), value, hints, REWRITE_LSN)
    assert isinstance(event, ChangeEvent) and event.after is not None
    assert event.after["amount"] == Decimal("123.45")
    assert event.after["at"].year == 2023


def test_a_value_with_its_schema_decodes_its_columns_by_the_schema() -> None:
    fields = [
        {"type": "int32", "optional": False, "field": "id"},
        {"type": "bytes", "optional": True, "name": "org.apache.kafka.connect.data.Decimal",
         "parameters": {"scale": "2"}, "field": "amount"},
        {"type": "string", "optional": True, "field": "__op"},
        {"type": "int64", "optional": True, "field": "__lsn"},
    ]
    schema = {"type": "struct", "fields": fields, "optional": False, "name": "cdc.public.t.Value"}
    payload = {"id": 1, "amount": base64.b64encode((-1).to_bytes(1, "big", signed=True)).decode(),
               "__op": "c", "__lsn": 5}
    event = decode_flattened("cdc.public.t", _key(1), orjson.dumps({"schema": schema, "payload": payload}),
                             None, REWRITE_LSN)
    assert isinstance(event, ChangeEvent)
    assert event.after == {"id": 1, "amount": Decimal("-0.01")} and event.lsn == 5


def test_renamed_and_reprefixed_add_fields_are_read_by_their_configured_names() -> None:
    flat = FlattenedEvents(add_fields="op,lsn:LSN,source.ts_ms", add_fields_prefix="meta_",  # type: ignore[arg-type]
                           delete_handling="rewrite")
    value = orjson.dumps({"id": 1, "meta_op": "c", "LSN": 12, "meta_source_ts_ms": 3})
    event = decode_flattened("t", _key(1), value, None, flat, "public.t")
    assert isinstance(event, ChangeEvent) and (event.op, event.lsn, event.ts_ms) == (Op.CREATE, 12, 3)
    assert event.after == {"id": 1}


def test_the_router_key_field_names_the_table_and_is_not_a_key_column() -> None:
    key = _key(1, __dbz__physicalTableIdentifier="cdc.sales.orders")
    event = decode_flattened("cdc.all", key, _flat({"id": 1}, op="c"), None, REWRITE_LSN)
    assert isinstance(event, ChangeEvent) and event.source == "sales.orders" and event.key == {"id": 1}
    assert peek_source("cdc.all", key, b"{}", REWRITE_LSN) == "sales.orders"


def test_peek_finds_the_table_in_an_envelope_or_in_added_fields() -> None:
    env = debezium.value(debezium.row_change("c", {"id": 1}, debezium.source_block("t", schema="s")))
    assert peek_source("x", _key(1), env, None) == "s.t"
    assert peek_source("x", _key(1), _flat({"id": 1}, table="t", schema="s"), None) == "s.t"
    assert peek_source("x", _key(1), _flat({"id": 1}, table="t"), None) == "t"
    assert peek_source("x", _key(1), b"not json", None) is None


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (b"[1]", "not a JSON object"),
        (_flat({"id": 1}, op="x"), "unknown op 'x'"),
        (_flat({"id": 1}, op="c", lsn="12"), "__lsn is not an integer"),
        (_flat({"id": 1}, op="c", deleted="maybe"), "neither 'true' nor 'false'"),
    ],
)
def test_bad_flattened_records_are_decode_errors_naming_the_problem(value: bytes, why: str) -> None:
    with pytest.raises(DecodeError, match=why):
        decode_flattened("cdc.public.t", _key(1), value, None, REWRITE_LSN)


def test_heartbeats_on_a_flattened_topic_are_skipped() -> None:
    assert isinstance(decode_flattened("cdc.public.t", None, b'{"ts_ms": 5}', None, REWRITE_LSN), Skip)


# ---- config check ------------------------------------------------------------------------------


def _config_error(**table: Any) -> str:
    with pytest.raises(ConfigError) as info:
        config(table_spec(**table))
    return str(info.value)


def test_shadow_mode_without_an_lsn_field_is_refused_naming_the_add_field() -> None:
    text = _config_error(mode="shadow", event_format="flattened",
                         flattened={"add_fields": ["op"], "delete_handling": "rewrite"})
    assert "add `lsn` to transforms.unwrap.add.fields" in text
    assert "tables[0].flattened.add_fields" in text


def test_shadow_mode_with_tombstone_deletes_is_refused_naming_rewrite() -> None:
    text = _config_error(mode="shadow", event_format="flattened",
                         flattened={"add_fields": "op,lsn", "delete_handling": "tombstone"})
    assert "delete.tombstone.handling.mode=rewrite" in text


def test_shadow_mode_with_lsn_and_rewritten_deletes_is_accepted() -> None:
    cfg = config(table_spec(mode="shadow", event_format="flattened",
                            flattened={"add_fields": "op,lsn,source.ts_ms", "delete_handling": "rewrite"}))
    flat = cfg.tables[0].flattened
    assert flat is not None and flat.ordered_by_lsn and flat.field_name("source.ts_ms") == "__source_ts_ms"


def test_dropped_deletes_are_refused_unless_acknowledged() -> None:
    text = _config_error(event_format="flattened", flattened={"delete_handling": "drop"})
    assert "loses every delete" in text and "delete.tombstone.handling.mode=rewrite" in text
    assert "tables[0].flattened.delete_handling" in text
    cfg = config(table_spec(event_format="flattened",
                            flattened={"delete_handling": "drop", "accept_lost_deletes": True}))
    assert cfg.tables[0].flattened is not None and cfg.tables[0].flattened.deletes == "none"
    assert "drop only" in _config_error(event_format="flattened",
                                        flattened={"delete_handling": "rewrite", "accept_lost_deletes": True})


def test_skipping_snapshot_rows_needs_the_op_field() -> None:
    assert "add `op` to transforms.unwrap.add.fields" in _config_error(
        event_format="flattened", snapshot_policy="skip")


def test_flattened_settings_on_an_envelope_table_are_refused() -> None:
    assert "event_format: flattened only" in _config_error(flattened={"add_fields": ["op"]})


def test_one_topic_carries_one_event_format() -> None:
    a = table_spec(topic="cdc.all")
    b = table_spec(source="public.u", target="U", topic="cdc.all", event_format="flattened")
    with pytest.raises(ConfigError, match="one topic has one event format"):
        config(a, b)


def test_a_bad_topic_pattern_is_refused_and_a_good_one_is_subscribed_as_a_regex() -> None:
    doc_kafka = {"bootstrap_servers": "127.0.0.1:1", "topic_prefix": "cdc"}
    with pytest.raises(ConfigError, match="topic_pattern"):
        config(table_spec(), kafka={**doc_kafka, "topic_pattern": "cdc.("})
    cfg = config(table_spec(topic="custom.t"), kafka={**doc_kafka, "topic_pattern": r"routed\..*"})
    assert cfg.topics() == ["custom.t", r"^(routed\..*)$"]
    assert cfg.kafka.matches_pattern("routed.x") and not cfg.kafka.matches_pattern("xrouted.x")


# ---- routing and ordering in the pipeline ------------------------------------------------------

COLUMNS = {"owner": {"name": "Owner"}}


def _pipeline(*tables: dict[str, Any], **kafka: Any) -> tuple[Pipeline, FakeDynamoStore]:
    cfg = config(*tables, kafka={"bootstrap_servers": "127.0.0.1:1", "topic_prefix": "cdc", **kafka})
    store = FakeDynamoStore()
    for t in cfg.tables:
        store.create_table(t.target, ["PK"])
    return Pipeline(cfg, store), store


def _outcomes(result: Any) -> dict[tuple[str, str], int]:
    return dict(result.outcomes)


def test_a_shared_topic_is_routed_by_each_records_source_and_other_tables_are_unmapped() -> None:
    t = table_spec(COLUMNS, topic="cdc.all")
    u = table_spec(COLUMNS, source="public.u", target="U", topic="cdc.all")
    pipeline, store = _pipeline(t, u)
    store.put("T", {"PK": "T#1", "id": Decimal(1), "Owner": "ada"})
    store.put("U", {"PK": "T#1", "id": Decimal(1), "Owner": "bob"})

    def rec(table: str, offset: int, owner: str) -> Record:
        src = debezium.source_block(table, lsn=100 + offset, ts_ms=1)
        value = debezium.value(debezium.row_change("c", {"id": 1, "owner": owner}, src))
        return Record("cdc.all", 0, offset, debezium.key({"id": 1}), value, None)

    result = pipeline.process([rec("t", 0, "ada"), rec("u", 1, "bob"), rec("v", 2, "cy")], now=10.0)
    assert _outcomes(result) == {("public.t", "match"): 1, ("public.u", "match"): 1, ("public.v", "unmapped"): 1}
    assert result.dead_letters == []


def test_records_of_pattern_topics_without_a_mapped_table_are_counted_not_dead_lettered() -> None:
    pipeline, _ = _pipeline(table_spec(COLUMNS), topic_pattern=r"cdc\..*")
    src = debezium.source_block("other", lsn=1, ts_ms=1)
    value = debezium.value(debezium.row_change("c", {"id": 1}, src))
    result = pipeline.process([Record("cdc.public.other", 0, 0, debezium.key({"id": 1}), value, None),
                               Record("cdc.junk", 0, 0, None, b"{not json", None)], now=10.0)
    assert _outcomes(result) == {("public.other", "unmapped"): 1, ("<unmapped>", "unmapped"): 1}
    assert result.dead_letters == []


def test_a_topic_that_is_neither_mapped_nor_matched_is_still_dead_lettered() -> None:
    pipeline, _ = _pipeline(table_spec(COLUMNS), topic_pattern=r"routed\..*")
    result = pipeline.process([Record("cdc.public.zzz", 0, 0, b'{"id":1}', b"{}", None)], now=10.0)
    assert _outcomes(result) == {("<unknown>", "dead_letter"): 1}


def test_without_an_lsn_a_keys_events_are_ordered_by_offset() -> None:
    """Two updates of one key in a batch: the later offset wins, the earlier one is superseded,
    and a redelivery of the earlier offset is a duplicate."""
    pipeline, store = _pipeline(table_spec(COLUMNS, event_format="flattened",
                                           flattened={"delete_handling": "drop", "accept_lost_deletes": True}))
    store.put("T", {"PK": "T#1", "id": Decimal(1), "Owner": "new"})

    def rec(offset: int, owner: str) -> Record:
        return Record("cdc.public.t", 0, offset, _key(1), orjson.dumps({"id": 1, "owner": owner}), None)

    first = pipeline.process([rec(5, "old"), rec(6, "new")], now=10.0)
    assert _outcomes(first) == {("public.t", "superseded"): 1, ("public.t", "match"): 1}
    again = pipeline.process([rec(5, "old")], now=11.0)
    assert _outcomes(again) == {("public.t", "duplicate"): 1}


def test_a_tombstone_only_delete_is_verified_as_absence() -> None:
    pipeline, store = _pipeline(table_spec(COLUMNS, event_format="flattened", confirm_deletes=False,
                                           flattened={"add_fields": ["op"], "delete_handling": "tombstone"}))
    store.put("T", {"PK": "T#2", "id": Decimal(2), "Owner": "x"})  # still there: not yet deleted
    result = pipeline.process([Record("cdc.public.t", 0, 0, _key(1), None, None)], now=10.0)
    assert _outcomes(result) == {("public.t", "match"): 1}  # T#1 is absent, as expected


def test_the_flattened_example_checks_and_routes_its_shared_topic() -> None:
    from pathlib import Path

    from parity.config_loader import load_config

    path = Path(__file__).resolve().parents[2] / "examples" / "payments-flattened.yaml"
    cfg = load_config(path, env={"PARITY_PG_DSN": "postgresql://u@127.0.0.1:1/db",
                                 "PARITY_KAFKA_BOOTSTRAP": "127.0.0.1:1"})
    [table] = cfg.tables
    assert table.event_format == "flattened" and table.flattened is not None
    assert table.flattened.ordered_by_lsn and table.flattened.field_name("table") == "__table"
    assert cfg.topics() == ["parity.all-tables", r"^(parity\.all-tables)$"]
