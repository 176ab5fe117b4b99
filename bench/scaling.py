"""Scaling: 1 vs 2 daemon processes (`python -m parity.cli run --config F`) in one consumer group
over the topic's 4 partitions. Progress is read from the group's committed offsets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Consumer, TopicPartition


def _committed(consumer: Any, topic: str, partitions: list[int]) -> int:
    done = 0
    for tp in consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10):
        done += max(0, tp.offset)
    return done


def run(raw: dict[str, Any], topic: str, end_offsets: dict[int, int], processes: int, base: Path,
        timeout: float) -> dict[str, Any]:
    total = sum(end_offsets.values())
    group = f"{raw['kafka']['group_id']}-x{processes}"
    procs: list[subprocess.Popen[bytes]] = []
    logs = []
    for i in range(processes):
        state = base / f"scale{processes}-{i}"
        state.mkdir(parents=True, exist_ok=True)
        cfg = {**raw, "kafka": {**raw["kafka"], "group_id": group},
               "daemon": {**raw["daemon"], "state_dir": str(state)}}
        path = state / "parity.yaml"
        path.write_text(yaml.safe_dump(cfg))
        log = open(state / "daemon.log", "wb")  # noqa: SIM115 - closed below
        logs.append(log)
        argv = [sys.executable, "-m", "parity.cli", "run", "--config", str(path)]
        procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                      env={**os.environ, "PYTHONUNBUFFERED": "1"}))
    watcher = Consumer({"bootstrap.servers": raw["kafka"]["bootstrap_servers"], "group.id": group,
                        "enable.auto.commit": False})
    partitions = sorted(end_offsets)
    launched = time.monotonic()
    first: tuple[float, int] | None = None
    done = 0
    try:
        while done < total:
            if time.monotonic() - launched > timeout:
                raise TimeoutError(f"{processes} daemon(s): {done} of {total} committed in {timeout:.0f}s")
            if any(p.poll() is not None for p in procs):
                raise RuntimeError(f"a daemon exited early (see {base}/scale{processes}-*/daemon.log)")
            done = _committed(watcher, topic, partitions)
            if done and first is None:
                first = (time.monotonic(), done)
            time.sleep(0.1)
        finished = time.monotonic()
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        for log in logs:
            log.close()
        watcher.close()
    assert first is not None
    window = finished - first[0]
    counted = total - first[1]
    rate = counted / window if window > 0 and counted > 0 else total / (finished - launched)
    return {"processes": processes, "events": total, "launch_to_done_s": round(finished - launched, 2),
            "launch_to_first_commit_s": round(first[0] - launched, 2),
            "events_per_s": round(rate), "events_per_s_incl_startup": round(total / (finished - launched))}
