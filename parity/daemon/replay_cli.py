"""`parity replay --dlq` assembled with real clients (see parity.daemon.replay for what it does)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from parity.adapters.clients import dynamodb_client
from parity.adapters.dynamodb import DynamoStore
from parity.adapters.state import StateStore
from parity.core.config import ParityConfig
from parity.daemon.replay import (
    SETTLED,
    Replayer,
    dead_letters_from_file,
    dead_letters_from_topic,
    fetch_record,
    replay_consumer,
    summary,
)
from parity.daemon.run import state_path


def run_replay(config: ParityConfig, *, from_file: Path | None, again: bool, as_json: bool,
               timeout_s: float) -> int:
    state = StateStore(state_path(config))
    dynamo = DynamoStore(dynamodb_client(config.dynamodb), concurrency=config.daemon.dynamo_concurrency,
                         write_concurrency=config.shadow_write_width)
    shadow = None
    if any(t.mode == "shadow" for t in config.tables):
        from parity.daemon.shadow import ShadowApplier

        shadow = ShadowApplier(config, dynamo, state)
    letters_consumer = replay_consumer(config)
    source_consumer = replay_consumer(config)
    try:
        letters = (list(dead_letters_from_file(from_file)) if from_file is not None
                   else list(dead_letters_from_topic(letters_consumer, config.kafka.dead_letter_topic)))
        replayer = Replayer(config, dynamo, state, shadow=shadow, settle_timeout_s=timeout_s)
        results = replayer.run(letters, lambda t, p, o: fetch_record(source_consumer, t, p, o), again=again)
    finally:
        letters_consumer.close()
        source_consumer.close()
        state.close()
    if as_json:
        typer.echo(json.dumps({"replayed": [r.to_json() for r in results], "outcomes": summary(results)}, indent=2))
    else:
        for r in results:
            line = f"{r.letter.position} {r.table or r.letter.table or '-'}: {r.outcome}"
            typer.echo(line + (f" ({r.detail})" if r.detail else ""))
        counts = ", ".join(f"{k} {v}" for k, v in summary(results).items()) or "no dead letters"
        typer.echo(f"{len(results)} dead letter(s) replayed: {counts}")
    return 0 if all(r.outcome in SETTLED for r in results) else 1
