"""The bridge as `parity dev up` starts it: waited for while its snapshot progresses (not a fixed
time), `--timeout` as a hard cap, and a running bridge restarted (offsets kept) when --table or
--topic-prefix change, instead of silently keeping the old settings."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import unique
from tests.integration.test_stack_cdc import TopicReader

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _dev(state: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "parity.devstack.cli", *args, "--state-dir", str(state)],
                          capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_wait_streaming_outlasts_the_stall_window_while_the_snapshot_progresses(pg: Any, kafka: Any,
                                                                                  bridge_factory: Any) -> None:
    table = unique("big")
    with pg.connect() as conn:
        conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, v text)")
        # Large enough that the snapshot outlasts two stall windows on a quiet machine too (250k rows
        # took 11.8 s here, just under the 12 s the check needs; 400k take about 19 s).
        conn.execute(f"INSERT INTO {table} SELECT g, md5(g::text) FROM generate_series(1, 400000) g")
    bridge = bridge_factory([table], partitions=1, schemas_enable=False, wait=False)
    stall_s = 6.0
    t0 = time.monotonic()
    bridge.wait_streaming(stall_s=stall_s)  # a fixed 6 s deadline would have failed this snapshot
    waited = time.monotonic() - t0
    print(f"streaming after {waited:.1f}s with a {stall_s:.0f}s stall window")
    assert waited > 2 * stall_s, "the snapshot was too quick to show anything: inconclusive"
    assert b"bridge: forwarded " in bridge.log_path.read_bytes()


@pytest.fixture(scope="module")
def dev(stack_dir: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    state = stack_dir / unique("dev")
    up = _dev(state, "up", "--json")
    assert up.returncode == 0, up.stderr
    try:
        yield state, json.loads(up.stdout)
    finally:
        _dev(state, "down")


def _topic_ops(bootstrap: str, topic: str, expect: int, timeout: float = 60) -> list[tuple[str, Any]]:
    """(op, id) of every record on the topic, read until `expect` arrived and then 2 quiet seconds."""
    reader = TopicReader(bootstrap, topic, 4)
    try:
        reader.read_until(lambda rs: len(rs) >= expect, timeout=timeout)
        reader.drain(quiet=2.0)
        values = [json.loads(m.value()) for m in reader.records if m.value() is not None]
    finally:
        reader.close()
    values = [v.get("payload", v) for v in values]
    return sorted((v["op"], (v["after"] or v["before"])["id"]) for v in values)


def test_dev_up_timeout_is_a_hard_cap_and_a_rerun_waits_on_progress(dev: tuple[Path, dict[str, Any]]) -> None:
    state, ep = dev
    table, prefix = unique("huge"), unique("t")
    with psycopg.connect(ep["postgres"]["dsn"], autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, v text)")
        conn.execute(f"INSERT INTO {table} SELECT g, md5(g::text) FROM generate_series(1, 300000) g")
    capped = _dev(state, "up", "--with", "bridge", "--table", table, "--topic-prefix", prefix, "--timeout", "2")
    assert capped.returncode == 1, capped.stdout + capped.stderr
    assert "not streaming after the 2s timeout" in capped.stderr and "keeps running" in capped.stderr
    env = _dev(state, "env")  # recorded although the wait failed
    assert f"export PARITY_TOPIC_PREFIX={prefix}" in env.stdout.splitlines(), env.stderr
    again = _dev(state, "up", "--json", "--with", "bridge", "--table", table, "--topic-prefix", prefix)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["bridge"]["restarted_because"] == []  # same settings: adopted


def test_changed_tables_or_prefix_restart_the_running_bridge_keeping_offsets(
        dev: tuple[Path, dict[str, Any]]) -> None:
    state, ep = dev
    dsn, bootstrap = ep["postgres"]["dsn"], ep["kafka"]["bootstrap"]
    assert ep["env"]["PARITY_PG_DSN"] == dsn and ep["env"]["PARITY_KAFKA_BOOTSTRAP"] == bootstrap
    assert ep["env"]["AWS_SECRET_ACCESS_KEY"] == "local"
    a, b, p1, p2 = unique("a"), unique("b"), unique("p"), unique("p")
    with psycopg.connect(dsn, autocommit=True) as conn:
        for t in (a, b):
            conn.execute(f"CREATE TABLE {t} (id int PRIMARY KEY, v text)")
            conn.execute(f"INSERT INTO {t} VALUES (1, 'x'), (2, 'y')")
    first = _dev(state, "up", "--json", "--with", "bridge", "--table", a, "--topic-prefix", p1)
    assert first.returncode == 0, first.stderr
    pid1 = json.loads(first.stdout)["bridge"]["pid"]

    added = _dev(state, "up", "--json", "--with", "bridge", "--table", a, "--table", b)  # prefix kept
    assert added.returncode == 0, added.stderr
    assert "restarted for the new settings, offsets kept" in added.stderr
    bridge = json.loads(added.stdout)["bridge"]
    assert bridge["pid"] != pid1 and bridge["tables"] == [a, b] and bridge["topic_prefix"] == p1
    assert any(change.startswith("tables ") for change in bridge["restarted_because"])
    assert bridge["tables_added"] == [b]
    assert f"streams changes of {b} from now on; rows already there are not snapshotted" in added.stderr
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"INSERT INTO {a} VALUES (3, 'z')")
        conn.execute(f"INSERT INTO {b} VALUES (3, 'z')")
    # Offsets kept: a's snapshot is not sent again; b streams from the restart on.
    assert _topic_ops(bootstrap, f"{p1}.public.{a}", 3) == [("c", 3), ("r", 1), ("r", 2)]
    assert _topic_ops(bootstrap, f"{p1}.public.{b}", 1) == [("c", 3)]  # as the note above says

    same = _dev(state, "up", "--json", "--with", "bridge")  # nothing given: the running settings
    assert same.returncode == 0, same.stderr
    assert "restarted" not in same.stderr
    assert json.loads(same.stdout)["bridge"]["pid"] == bridge["pid"]

    renamed = _dev(state, "up", "--json", "--with", "bridge", "--topic-prefix", p2)
    assert renamed.returncode == 0, renamed.stderr
    assert json.loads(renamed.stdout)["bridge"]["topic_prefix"] == p2
    # A new prefix has no offsets of its own: its topics start with a snapshot.
    assert [op for op, _ in _topic_ops(bootstrap, f"{p2}.public.{a}", 3)] == ["r", "r", "r"]

    text = _dev(state, "up")  # the human form prints the same exports, and how to eval them
    assert text.returncode == 0, text.stderr
    assert f'eval "$(parity dev env --state-dir {state})"' in text.stdout
    assert f"export PARITY_PG_DSN={dsn}" in text.stdout.splitlines()
    assert "export AWS_ACCESS_KEY_ID=local" in text.stdout.splitlines()

    env = _dev(state, "env")
    assert env.returncode == 0, env.stderr
    assert f"export PARITY_TOPIC_PREFIX={p2}" in env.stdout.splitlines()
    assert f"export PARITY_DYNAMODB_ENDPOINT={ep['dynamodb']['endpoint']}" in env.stdout.splitlines()
    with contextlib.suppress(Exception):
        _dev(state, "down")


def test_a_bridge_that_makes_no_progress_fails_after_the_stall_window_naming_why(
        pg: Any, bridge_factory: Any) -> None:
    """An open write transaction holds up creating the replication slot: no progress at all."""
    from parity.devstack.process import ServiceError

    table = unique("held")
    with pg.connect() as conn:
        conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY)")
    blocker = psycopg.connect(pg.dsn)
    try:
        blocker.execute(f"INSERT INTO {table} VALUES (1)")  # open, with a transaction id
        bridge = bridge_factory([table], wait=False)
        t0 = time.monotonic()
        with pytest.raises(ServiceError, match=r"no progress for 5s and not streaming yet \(0 events forwarded"):
            bridge.wait_streaming(stall_s=5.0)
        assert 5.0 <= time.monotonic() - t0 < 30
        assert bridge.alive()  # left running: it may still get there once the transaction ends
    finally:
        blocker.rollback()
        blocker.close()
