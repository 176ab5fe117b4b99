"""The pure path without services: records shaped like bench/dataset.py's (schemas on, precise
decimals, timestamptz as ZonedTimestamp), built by hand with tests/debezium.py, run through
bench/purepath.py with the compiled plan and with the general path, interleaved in one process.

    PYTHONPATH=. python -m bench.purepath_offline [events] [rounds]

Prints the CPU µs/event of each round and the best of each path."""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any

from bench import dataset, purepath
from parity.adapters.kafka import Record
from parity.config_loader import parse_config
from parity.core.config import ParityConfig
from tests import debezium

TOPIC = "bench.public.bench_acc"


def _field(name: str, kind: str, semantic: str | None = None, params: dict[str, str] | None = None) -> dict[str, Any]:
    f: dict[str, Any] = {"type": kind, "optional": name == "note", "field": name}
    if semantic:
        f["name"] = semantic
    if params:
        f["parameters"] = params
    return f


FIELDS = [
    _field("id", "int64"), _field("customer_id", "int64"), _field("status", "string"),
    _field("amount", "bytes", "org.apache.kafka.connect.data.Decimal",
           {"scale": "2", "connect.decimal.precision": "12"}),
    _field("currency", "string"), _field("note", "string"),
    _field("created_at", "string", "io.debezium.time.ZonedTimestamp"),
    _field("updated_at", "string", "io.debezium.time.ZonedTimestamp"), _field("touches", "int32"),
]


def _decimal(unscaled: int) -> str:
    return base64.b64encode(unscaled.to_bytes(max(1, (unscaled.bit_length() + 8) // 8), "big", signed=True)).decode()


def records(keys: int, events: int) -> list[Record]:
    """`keys` snapshot rows, then updates of them: the bench dataset's shape."""
    value_schema = debezium.envelope_schema(FIELDS, name=TOPIC)
    key_schema = debezium.key_schema([_field("id", "int64")], name=TOPIC)
    out = []
    for e in range(events):
        i = e % keys + 1
        snapshot = e < keys
        clock = f"{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}"
        row = {"id": i, "customer_id": i % 5000, "status": ["PENDING", "SETTLED", "FAILED"][i % 3],
               "amount": _decimal(i % 100000 + 100), "currency": "EUR", "note": f"{i * 7919:032x}" * 5,
               "created_at": f"2026-01-01T{clock}.123456Z", "updated_at": f"2026-01-01T{clock}Z",
               "touches": e // keys}
        src = debezium.source_block("bench_acc", lsn=1000 + e, tx_id=5 + e, ts_ms=1_700_000_000_000 + e,
                                    snapshot="true" if snapshot else False)
        envelope = debezium.envelope("r" if snapshot else "u", src, after=row)
        out.append(Record(TOPIC, e % 4, e // 4, debezium.key({"id": i}, key_schema),
                          debezium.value(envelope, value_schema), None))
    return out


class _Stack:  # the endpoints raw_config names; nothing is contacted
    class pg:
        dsn = "postgresql://u@127.0.0.1:1/db"

    class kafka:
        bootstrap = "127.0.0.1:1"

    class dynamodb:
        endpoint = "http://127.0.0.1:1"


def config() -> ParityConfig:
    raw = dataset.raw_config(_Stack, prefix="bench", target="BenchAcc", group="g", state_dir=Path("/nonexistent"))
    return parse_config(raw, source="bench", env={})


def main(argv: list[str]) -> None:
    events = int(argv[0]) if argv else 40_000
    rounds = int(argv[1]) if len(argv) > 1 else 5
    cfg = config()
    recs = records(events // 2, events)
    actual = {i["PK"]: i for i in dataset.final_items(cfg, recs)}
    for general in (False, True):
        purepath.run(cfg, recs[:2000], actual, general=general)
    per_event: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(rounds):
        for general in (False, True):
            r = purepath.run(cfg, recs, actual, general=general)
            per_event[general].append(r["cpu_s"] * 1e6 / r["events"])
    for general, values in per_event.items():
        print("general" if general else "plan   ", "CPU µs/event:", [round(v, 1) for v in values],
              "best", round(min(values), 1))


if __name__ == "__main__":
    main(sys.argv[1:])
