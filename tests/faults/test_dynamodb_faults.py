"""DynamoDB faults: unreachable for 40 s (SIGSTOP of a dedicated DynamoDB Local, so other tests'
instance is untouched) and throttling injected on a fraction of calls."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from parity.workload import PaymentsApp
from tests.conftest import running
from tests.faults.harness import (
    TelemetryDaemon,
    assert_accounted,
    committed_offsets,
    partition_ends,
    settle_and_account,
)
from tests.integration.payments_harness import FAST_GRACE, PaymentsStack
from tests.integration.verify_harness import resolved_total, wait_for

pytestmark = pytest.mark.faults

OUTAGE_S = 40.0  # at least 30 s; room for the first read timeout on a loaded machine


@pytest.fixture
def own_dynamodb(tmp_path: Path) -> Iterator[Any]:
    from parity.devstack.dynamodb import start_dynamodb

    with running(start_dynamodb(tmp_path / "own-dynamodb")) as service:
        try:
            yield service
        finally:
            service.resume()  # never leave a stopped JVM behind


def test_dynamodb_unreachable_for_40s_reports_not_ready_then_resumes_and_skips_nothing(
    pg: Any, kafka: Any, own_dynamodb: Any, bridge_factory: Any, tmp_path: Path
) -> None:
    stack = PaymentsStack(
        pg, kafka, own_dynamodb, tmp_path, tag="fd", table_overrides=FAST_GRACE,
        overrides={"dynamodb": {"timeout_s": 3}},
    )
    dep, mapping = stack.dep, stack.mapping
    bridge = stack.start_cdc(bridge_factory)
    with pg.connect() as conn, TelemetryDaemon(dep.config) as runner:
        app = PaymentsApp(conn, own_dynamodb.client(), mapping, lag_ms=500, seed=21)
        wait_for(runner.ready, 60, "the daemon to be ready before the outage")
        app.run(240, drift_every=10, rate=80)
        # The application's writes have all landed (an outage that also delays them would make
        # them late past the grace period: real drift). DynamoDB then goes away while the daemon
        # still has change events in flight and injected drift waiting out its grace period.
        app.finish()
        own_dynamodb.pause()
        paused_at = time.monotonic()
        try:
            try:
                wait_for(
                    lambda: {"dynamodb", "pipeline"} <= set(runner.failed_checks()),
                    OUTAGE_S - 4,
                    "/readyz to turn false, naming DynamoDB, during the outage",
                    interval=0.2,
                )
            except TimeoutError as exc:
                d = runner.daemon
                raise AssertionError(
                    f"{exc}: thread alive {runner.thread.is_alive()}, last error {d.health.last_error!r}, "
                    f"pending checks {len(d.pipeline.rechecks)}, outcomes {resolved_total(dep.config)}"
                ) from None
            not_ready_after = time.monotonic() - paused_at
            pending = len(runner.daemon.pipeline.rechecks)
            # Nothing past an unverified record is committed while DynamoDB is away.
            ends = partition_ends(kafka.bootstrap, bridge.topics)
            before = committed_offsets(kafka.bootstrap, dep.config.kafka.group_id, list(ends))
            time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - paused_at)))
            during = committed_offsets(kafka.bootstrap, dep.config.kafka.group_id, list(ends))
            assert during == before
            assert sum(before.values()) < sum(ends.values())  # the outage did hold records back
            assert not runner.ready()
        finally:
            own_dynamodb.resume()
        outage = time.monotonic() - paused_at
        wait_for(runner.ready, 90, "/readyz to turn true after DynamoDB returns")
        recovered_after = time.monotonic() - paused_at - outage
        acc = settle_and_account(dep.config, kafka.bootstrap, bridge.topics, app, daemon=runner.daemon)
        errors = runner.metric("parity_dynamodb_errors_total")
    print(
        f"DynamoDB paused {outage:.0f} s: not ready after {not_ready_after:.1f} s, ready again "
        f"{recovered_after:.1f} s after resume, DynamoDB errors counted {errors:.0f}, "
        f"{sum(ends.values()) - sum(before.values())} records held back, {pending} checks pending at the cut"
    )
    assert_accounted(acc, f"DynamoDB unreachable {OUTAGE_S:.0f} s (SIGSTOP)")


class Throttler:
    """Answers a fraction of BatchGetItem calls with a throttling error instead of sending them,
    as a botocore before-call hook (DynamoDB Local never throttles)."""

    def __init__(self, fraction: float, seed: int) -> None:
        self.fraction = fraction
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.calls = 0
        self.throttled = 0

    def __call__(self, **kwargs: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        with self.lock:
            self.calls += 1
            if self.rng.random() >= self.fraction:
                return None
            self.throttled += 1
            code = self.rng.choice(["ProvisionedThroughputExceededException", "ThrottlingException"])
        response = AWSResponse("http://throttled", 400, {}, None)  # type: ignore[no-untyped-call]
        parsed = {
            "Error": {"Code": code, "Message": "injected by the fault suite"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        }
        return response, parsed


def test_throttling_on_60_percent_of_reads_is_retried_and_loses_nothing(
    payments: Any, pg: Any, kafka: Any, dynamodb: Any
) -> None:
    dep, bridge = payments.dep, payments.bridge
    mapping = dep.config.tables[0]
    throttler = Throttler(float(os.environ.get("PARITY_FAULT_THROTTLE", "0.6")), seed=5)
    with pg.connect() as conn, TelemetryDaemon(dep.config) as runner:
        client = runner.daemon.pipeline.dynamo.client
        client.meta.events.register("before-call.dynamodb.BatchGetItem", throttler)
        wait_for(runner.ready, 60, "the daemon to join its group")
        app = PaymentsApp(conn, dynamodb.client(), mapping, lag_ms=500, seed=8)
        app.run(300, drift_every=10, rate=60)
        app.finish()
        acc = settle_and_account(dep.config, kafka.bootstrap, bridge.topics, app, daemon=runner.daemon)
    # Read both sides once the daemon has stopped: it keeps reading (re-checks, open-drift re-reads)
    # until then, and a call throttled between the two reads made them disagree (seen once).
    counted = runner.metric("parity_dynamodb_throttles_total")
    retried = runner.metric("parity_dynamodb_errors_total", kind="throttled", outcome="retried")
    failed = runner.metric("parity_dynamodb_errors_total", kind="throttled", outcome="failed")
    print(f"BatchGetItem calls {throttler.calls}, throttled {throttler.throttled}, metric counted {counted:.0f} "
          f"(errors: {retried:.0f} retried, {failed:.0f} failed after every attempt)")
    assert_accounted(acc, "DynamoDB throttling on 60% of BatchGetItem")
    assert throttler.throttled >= 5 or throttler.fraction == 0
    assert counted == throttler.throttled
    # Every throttled attempt is an error, labelled by what followed: the error-rate alert counts
    # only those no retry absorbed.
    assert retried + failed == throttler.throttled
    assert retried > failed
