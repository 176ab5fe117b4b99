"""The streaming daemon: the loop that consumes change events and the steps each batch goes through.

- `run`        the loop: poll -> process -> re-check -> persist -> commit, and recovery (Daemon)
- `pipeline`   one batch through the steps, every record to one outcome (Pipeline)
- `batch`      what the steps pass along and count into (Work, Barrier, DeadLetter, BatchResult)
- `decode`     record -> change, barrier, dead letter or skip
- `readahead`  DynamoDB reads overlapping decoding
- `verify`     verdicts, re-checks within grace, drift and its resolution
- `shadow`     shadow mode: conditional writes of each change
- `telemetry`  batch results into Prometheus; `status` the `parity status` document
- `app`        DaemonApp: the one composition (daemon, metrics, probe, HTTP server, schedule) that
               `parity run`, the demo and the test harnesses share
- `main`, `wiring`  the `parity run` entry point and the daemon built from real adapters

The rules the steps apply (what an event should look like in DynamoDB, what a match is, when an
event is a duplicate) live in parity.core; the steps do the I/O and the counting.
"""
