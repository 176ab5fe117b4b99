"""Recovery after `kill -9`: how long a restarted daemon takes to be back at work.

A daemon process (`python -m parity.cli run --config F`, as in production and in
tests/faults/test_kill9.py) consumes a topic that a feeder keeps writing to (the dataset's own
Debezium records, produced again to their partitions, so every event still matches DynamoDB).
It is killed with SIGKILL at a random point after it committed, and a new process is started at
once with the same configuration and state directory, `runs` times. Per restart, from the
daemon's own log lines (timestamps of the JSON lines against the spawn time):

- `started_s`: spawn -> the loop starts (interpreter, imports, clients, state store, HTTP);
- `first_assignment_s`: -> the group gives this member partitions (`partitions assigned`);
- `all_partitions_s`: -> it holds every partition of the topic (the dead member's share too);
- `first_records_s`, `first_commit_s`: -> the first records polled, the first offsets committed
  (`back at work`);

and the time the killed process had been gone from the group's point of view is the gap between
the kill and `all_partitions_s`. Variants run alternately (restart 1 of A, of B, restart 2 of A...)
so that the machine's load hits them alike.

    .venv/bin/python -m bench --only recovery        (with the dataset, on the bench's stack)
"""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import yaml
from confluent_kafka import Producer

from parity.adapters.kafka import Record


class Feeder:
    """Writes `records` again, round robin, to their own partitions at about `rate` per second."""

    def __init__(self, bootstrap: str, records: Sequence[Record], rate: float) -> None:
        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
        self.records = records
        self.rate = rate
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="recovery-feeder", daemon=True)

    def start(self) -> Feeder:
        self._thread.start()
        return self

    def _run(self) -> None:
        started = time.monotonic()
        i = 0
        while not self._stop.is_set():
            due = int((time.monotonic() - started) * self.rate)
            while self.sent < due:
                r = self.records[i % len(self.records)]
                self.producer.produce(r.topic, value=r.value, key=r.key, partition=r.partition)
                i += 1
                self.sent += 1
            self.producer.poll(0)
            self._stop.wait(0.05)
        self.producer.flush(10)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)


class Incarnation:
    """One daemon process and its own log file."""

    def __init__(self, config_path: Path, log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in wait()/kill()
        self.spawned = time.time()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "parity.cli", "run", "--config", str(config_path)],
            stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for raw in self.log_path.read_bytes().splitlines():
            if raw.startswith(b"{"):
                try:
                    out.append(orjson.loads(raw))
                except orjson.JSONDecodeError:
                    continue
        return out

    def since_spawn(self, line: dict[str, Any]) -> float:
        at = dt.datetime.fromisoformat(line["timestamp"]).timestamp()
        return round(at - self.spawned, 3)

    def timeline(self, partitions: int) -> dict[str, float]:
        out: dict[str, float] = {}
        for line in self.lines():
            event = line.get("event")
            if event == "started" and "started_s" not in out:
                out["started_s"] = self.since_spawn(line)
            elif event == "partitions assigned":
                if line.get("assigned", 0) and "first_assignment_s" not in out:
                    out["first_assignment_s"] = self.since_spawn(line)
                if line.get("holding", 0) >= partitions and "all_partitions_s" not in out:
                    out["all_partitions_s"] = self.since_spawn(line)
            elif event == "back at work" and "first_commit_s" not in out:
                out["first_commit_s"] = self.since_spawn(line)
                loop = out.get("started_s")
                if loop is not None and "first_records_s" in line:
                    out["first_records_s"] = round(loop + float(line["first_records_s"]), 3)
        return out

    def wait_for(self, keys: Sequence[str], partitions: int, timeout: float) -> dict[str, float]:
        deadline = time.monotonic() + timeout
        while True:
            t = self.timeline(partitions)
            if all(k in t for k in keys):
                return t
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode} (see {self.log_path})")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {[k for k in keys if k not in t]} within {timeout:.0f}s ({self.log_path})")
            time.sleep(0.1)

    def kill(self) -> float:
        self.proc.send_signal(signal.SIGKILL)
        killed = time.time()
        self.proc.wait(10)
        self._log.close()
        return killed

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


class Variant:
    """A configuration whose restarts are measured: its own group, state directory and daemon."""

    def __init__(self, name: str, raw: dict[str, Any], base: Path, kafka: dict[str, Any]) -> None:
        self.name = name
        self.dir = base / f"recovery-{name}"
        self.dir.mkdir(parents=True, exist_ok=True)
        cfg = {**raw, "kafka": {**raw["kafka"], "group_id": f"bench-recovery-{name}-{time.time_ns()}", **kafka},
               "daemon": {**raw["daemon"], "state_dir": str(self.dir / "state")}}
        self.config_path = self.dir / "parity.yaml"
        self.config_path.write_text(yaml.safe_dump(cfg))
        self.n = 0
        self.proc = self._spawn()
        self.restarts: list[dict[str, Any]] = []

    def _spawn(self) -> Incarnation:
        self.n += 1
        return Incarnation(self.config_path, self.dir / f"daemon-{self.n}.log")

    def restart(self, partitions: int, timeout: float) -> dict[str, Any]:
        """Kill the running daemon (once it has committed), start the next one, time its return."""
        self.proc.wait_for(["first_commit_s"], partitions, timeout)
        killed = self.proc.kill()
        self.proc = self._spawn()
        t = self.proc.wait_for(["first_commit_s", "all_partitions_s"], partitions, timeout)
        t["kill_to_spawn_s"] = round(self.proc.spawned - killed, 3)
        self.restarts.append(t)
        return t

    def stop(self) -> None:
        self.proc.stop()


def summary(restarts: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("started_s", "first_assignment_s", "all_partitions_s", "first_records_s", "first_commit_s"):
        values = [r[key] for r in restarts if key in r]
        if values:
            out[key] = {"median": round(statistics.median(values), 2), "min": min(values), "max": max(values)}
    return out


def run(raw: dict[str, Any], bootstrap: str, records: Sequence[Record], partitions: int, base: Path, *,
        variants: dict[str, dict[str, Any]], runs: int = 4, rate: float = 200, seed: int = 23,
        timeout: float = 120) -> dict[str, Any]:
    """`variants`: name -> kafka settings merged into the configuration (session timeout, options)."""
    rng = random.Random(seed)
    feeder = Feeder(bootstrap, records, rate).start()
    started = [Variant(name, raw, base, kafka) for name, kafka in variants.items()]
    out: dict[str, Any] = {"runs_per_variant": runs, "feed_rate_per_s": rate, "partitions": partitions,
                           "load_average_start": [round(x, 2) for x in os.getloadavg()]}
    try:
        for i in range(runs):
            for v in started if i % 2 == 0 else reversed(started):
                time.sleep(rng.uniform(0.5, 3.0))  # a random point of its steady state
                t = v.restart(partitions, timeout)
                print(f"   {v.name} restart {i + 1}: {t}", flush=True)
    finally:
        for v in started:
            v.stop()
        feeder.stop()
    for v in started:
        out[v.name] = {"settings": variants[v.name], "summary": summary(v.restarts), "restarts": v.restarts}
    out["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    return out
