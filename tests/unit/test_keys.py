"""key_document: one typed, greppable rendering of a key for drift.jsonl, the topic, logs, reports."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from typing import Any

import orjson
import pytest
import structlog

from parity.adapters.state import DriftRecord, key_json
from parity.core.keys import key_document, key_fragment
from parity.logging import configure_logging

pytestmark = pytest.mark.unit
D = Decimal


@pytest.mark.parametrize(
    ("key", "text"),
    [
        ({"id": D("2.1E+2")}, '{"id":210}'),  # canonical 210 is 2.1E+2 in Decimal's own text
        ({"id": D("1E+2"), "sk": "A#1"}, '{"id":100,"sk":"A#1"}'),
        ({"sk": "x", "pk": D("-7")}, '{"pk":-7,"sk":"x"}'),  # attributes sorted
        ({"amount": D("0.5")}, '{"amount":0.5}'),
        ({"big": D("1E+30")}, '{"big":1E+30}'),
        ({"bin": b"\x01\x02"}, '{"bin":"b64:AQI="}'),
        ({"name": "Jos\u00e9"}, '{"name":"Jos\u00e9"}'),
    ],
)
def test_key_document_keeps_types_in_plain_digits(key: dict[str, Any], text: str) -> None:
    assert key_document(key) == text
    json.loads(text)  # valid JSON


def test_a_numeric_key_is_a_json_number() -> None:
    assert json.loads(key_document({"id": D("2.1E+2")})) == {"id": 210}


def test_drift_record_carries_the_key_document_and_keeps_the_identity_text() -> None:
    record = DriftRecord("public.t", "T", {"id": D("2.1E+2")}, "value_mismatch", [], 5, 1.0, 2.0, "u")
    line = record.to_json()
    assert b'"key":{"id":210}' in line
    assert orjson.loads(line)["key"] == {"id": 210}
    # The state store's identity form is unchanged, so stores written before stay de-duplicated.
    assert record.key_text() == key_json({"id": D("2.1E+2")}) == '{"id":"210"}'


def test_a_log_line_shows_a_key_exactly_as_the_drift_record_does() -> None:
    key = {"id": D("2.1E+2"), "sk": "A#1"}
    stream = io.StringIO()
    configure_logging("info", json=True, stream=stream)
    try:
        structlog.get_logger("parity.test").warning("drift", key=key_fragment(key), amount=D("1E+1"))
    finally:
        structlog.reset_defaults()
    line = stream.getvalue().splitlines()[-1]
    assert '"key":' + key_document(key) in line
    assert "2.1E+2" not in line
    assert json.loads(line)["amount"] == 10


def test_a_key_that_looks_like_a_secret_is_still_masked_in_logs() -> None:
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # the shape of an AWS secret access key
    stream = io.StringIO()
    configure_logging("info", json=True, stream=stream)
    try:
        structlog.get_logger("parity.test").warning("drift", key=key_fragment({"token": secret}))
    finally:
        structlog.reset_defaults()
    assert secret not in stream.getvalue()
