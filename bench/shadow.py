"""Shadow apply: parity's pipeline applying the real Debezium records (decode -> collapse ->
ShadowApplier: one conditional write per event) vs raw unconditional BatchWriteItem of the same
final items, same concurrency, each into a fresh table. The conditional floors run at the
concurrency of the write mode: transactions at `concurrency`, single PutItems at
`daemon.shadow_write_concurrency`."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench import dataset
from parity.adapters.clients import dynamodb_client
from parity.adapters.dynamodb import DynamoStore
from parity.adapters.kafka import Record
from parity.core.config import ParityConfig


def run(cfg: ParityConfig, records: list[Record], state_dir: Path, concurrency: int,
        raw_table: str) -> dict[str, Any]:
    from parity.adapters.state import StateStore
    from parity.daemon.pipeline import Pipeline
    from parity.daemon.shadow import ShadowApplier

    client = dynamodb_client(cfg.dynamodb)
    mapping = cfg.tables[0]
    for name in {mapping.write_table, raw_table}:
        dataset.create_dynamo_table(client, name)
    finals = dataset.final_items(cfg, records)
    # The raw items carry the version attribute the shadow writes add, so both write the same bytes.
    for item in finals:
        item[mapping.version_attribute] = Decimal(10**12)
    raw_s = dataset.batch_write(client, raw_table, finals, concurrency)
    # The conditional floor: the same final items as conditional Puts in TransactWriteItems of
    # 100, same threads (what a conditional write costs on this DynamoDB, without parity).
    dataset.create_dynamo_table(client, raw_table + "_tx")
    raw_tx_s = transact_write(client, raw_table + "_tx", finals, concurrency, mapping.version_attribute)
    # The single-write floor: the same conditional Puts, one PutItem each, as many in flight as
    # parity's single mode has (`daemon.shadow_write_concurrency`, capped to the connection pool).
    single_width = cfg.shadow_write_width
    dataset.create_dynamo_table(client, raw_table + "_one")
    raw_one_s = single_write(client, raw_table + "_one", finals, single_width, mapping.version_attribute)

    state = StateStore(state_dir / "shadow.sqlite")
    store = DynamoStore(client, concurrency=concurrency, write_concurrency=single_width)
    pipeline = Pipeline(cfg, store, shadow=ShadowApplier(cfg, store, state))
    batch = cfg.daemon.batch_max_events
    outcomes: dict[str, int] = {}
    started = time.perf_counter()
    for i in range(0, len(records), batch):
        result = pipeline.process(records[i : i + batch], time.time())
        for (_t, outcome), n in result.outcomes.items():
            outcomes[outcome] = outcomes.get(outcome, 0) + n
    shadow_s = time.perf_counter() - started
    store.close()
    state.close()
    written = client.describe_table(TableName=mapping.write_table)["Table"].get("ItemCount")
    applied = outcomes.get("applied", 0)
    raw_rate = len(finals) / raw_s
    shadow_rate = len(records) / shadow_s
    return {
        "events": len(records), "final_items": len(finals), "concurrency": concurrency,
        "single_write_concurrency": single_width,
        "raw_batch_write": {"items": len(finals), "seconds": round(raw_s, 3), "items_per_s": round(raw_rate)},
        "shadow_apply": {"events": len(records), "applied": applied, "seconds": round(shadow_s, 3),
                         "events_per_s": round(shadow_rate), "outcomes": outcomes, "table_item_count": written},
        "raw_transact_write": {"items": len(finals), "seconds": round(raw_tx_s, 3),
                               "items_per_s": round(len(finals) / raw_tx_s)},
        "raw_single_write": {"items": len(finals), "seconds": round(raw_one_s, 3),
                             "items_per_s": round(len(finals) / raw_one_s)},
        # The conditional floor of this write mode: transactions of 100, or one PutItem each.
        "ratio_rate_over_raw_conditional": round(
            shadow_rate / (len(finals) / (raw_one_s if mapping.shadow_writes == "single" else raw_tx_s)), 3),
        # Headline: events applied per second over items written per second.
        "ratio_rate": round(shadow_rate / raw_rate, 3),
        "ratio_rate_over_raw_transactions": round(shadow_rate / (len(finals) / raw_tx_s), 3),
        # Same final table state: raw seconds over shadow seconds.
        "ratio_wall_same_final_state": round(raw_s / shadow_s, 3),
    }


def _conditional_put(table: str, item: dict[str, Any], version: str) -> dict[str, Any]:
    from parity.core.values import item_to_wire

    return {"TableName": table, "Item": item_to_wire(item),
            "ConditionExpression": "attribute_not_exists(#v) OR #v < :v",
            "ExpressionAttributeNames": {"#v": version},
            "ExpressionAttributeValues": {":v": item_to_wire({"v": item[version]})["v"]}}


def single_write(client: Any, table: str, items: list[dict[str, Any]], concurrency: int, version: str) -> float:
    """Conditional PutItem (`attribute_not_exists(v) OR v < :v`), one item a call: seconds."""
    from concurrent.futures import ThreadPoolExecutor

    requests = [_conditional_put(table, it, version) for it in items]
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda r: client.put_item(**r), requests))
    return time.perf_counter() - started


def transact_write(client: Any, table: str, items: list[dict[str, Any]], concurrency: int, version: str) -> float:
    """Conditional Puts (`attribute_not_exists(v) OR v < :v`) in TransactWriteItems of 100: seconds."""
    from concurrent.futures import ThreadPoolExecutor

    from parity.core.values import item_to_wire

    ops = [{"Put": {"TableName": table, "Item": item_to_wire(it),
                    "ConditionExpression": "attribute_not_exists(#v) OR #v < :v",
                    "ExpressionAttributeNames": {"#v": version},
                    "ExpressionAttributeValues": {":v": item_to_wire({"v": it[version]})["v"]}}} for it in items]
    chunks = [ops[i : i + 100] for i in range(0, len(ops), 100)]
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda c: client.transact_write_items(TransactItems=c), chunks))
    return time.perf_counter() - started
