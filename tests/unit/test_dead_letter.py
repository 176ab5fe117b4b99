"""What a dead letter publishes: enough to find and replay the record, never a column value.

The dead-letter topic is read by more people than the source topics; a mapping's `exclude: true`
(a tax id the target must never hold) and `redact: true` columns must not reach it. The record is
replayed from the source topic at (topic, partition, offset), see docs/runbook.md.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from parity.adapters.kafka import Record
from parity.daemon.batch import dead_letter_message
from parity.daemon.pipeline import Pipeline
from tests import debezium
from tests.fakes import FakeDynamoStore
from tests.unit.mapping_helpers import config

pytestmark = pytest.mark.unit

TOPIC = "cdc.public.people"
TAX_ID = "TAXID-774-21-9088"
NOTE = "NOTE-redacted-3f9a"


def _config(*, redact_key: bool = False) -> Any:
    return config(
        {
            "source": "public.people",
            "primary_key": ["id"],
            "target": "People",
            "keys": {"PK": "P#{id}"},
            "columns": {
                "id": {"redact": True} if redact_key else {},
                "tax_id": {"exclude": True},
                "note": {"redact": True},
                # A value the item cannot hold: this record is dead-lettered for its mapping.
                "score": {"type": "number"},
            },
        }
    )


def _poison(offset: int) -> Record:
    after = {"id": 42, "tax_id": TAX_ID, "note": NOTE, "score": "not a number"}
    value = debezium.value(debezium.envelope("c", debezium.source_block("people"), after=after))
    return Record(TOPIC, 3, offset, debezium.key({"id": 42}), value, 1_700_000_000_000)


def _dead_letters(config: Any, *records: Record) -> list[dict[str, Any]]:
    store = FakeDynamoStore()
    store.create_table("People", ["PK"])
    pipeline = Pipeline(config, store)
    result = pipeline.process(list(records), 1_000.0)
    assert result.dead_letters, "the fixture record must be dead-lettered"
    return [orjson.loads(dead_letter_message(dl, config)) for dl in result.dead_letters]


def test_a_dead_letter_carries_where_the_record_is_and_why_but_no_column_value() -> None:
    [body] = _dead_letters(_config(), _poison(17))
    text = orjson.dumps(body).decode()
    assert TAX_ID not in text, "an excluded column reached the dead-letter topic"
    assert NOTE not in text, "a redacted column reached the dead-letter topic"
    assert "value" not in body
    assert body["topic"] == TOPIC and body["partition"] == 3 and body["offset"] == 17
    assert body["table"] == "public.people"
    assert body["key"] == '{"id":42}' and body["key_redacted"] is False
    assert body["reason"].startswith("unmappable:") and body["reason_class"] == "mapping"
    assert body["timestamp_ms"] == 1_700_000_000_000


def test_the_kafka_key_is_left_out_when_a_key_column_is_redacted() -> None:
    [body] = _dead_letters(_config(redact_key=True), _poison(5))
    assert body["key"] is None and body["key_redacted"] is True
    assert "42" not in orjson.dumps(body).decode().replace('"offset":5', "")
    assert (body["topic"], body["partition"], body["offset"]) == (TOPIC, 3, 5)


def test_an_undecodable_record_of_an_unmapped_topic_keeps_its_key_and_drops_its_value() -> None:
    record = Record("cdc.public.other", 0, 9, b"k1", b'{"secret": "' + TAX_ID.encode() + b'"}', None)
    [body] = _dead_letters(_config(), record)
    assert TAX_ID not in orjson.dumps(body).decode()
    assert body["key"] == "k1" and body["table"] is None and body["offset"] == 9
