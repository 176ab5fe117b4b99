"""`python -m bench [--quick]`: every benchmark on the real local stack, side by side in one run.

Writes bench/results.json and prints each ratio. Sections fail independently: an error is
recorded in the results instead of the numbers, and the run goes on.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import (
    cluster,
    cost,
    dataset,
    env,
    latency_proxy,
    mismatch,
    purepath,
    reconcile,
    recovery,
    scaling,
    shadow,
    verifier,
)

RESULTS = Path(__file__).resolve().parent / "results.json"

SIZES = {
    "quick": {"keys": 10_000, "events": 20_000, "naive_sample": 5_000, "reconcile_rows": [20_000, 100_000],
              "recovery_runs": 3, "cluster_rows": 20_000},
    "full": {"keys": 100_000, "events": 200_000, "naive_sample": 20_000, "reconcile_rows": [100_000, 1_000_000],
             "recovery_runs": 5, "cluster_rows": 1_000_000},
}
CONCURRENCY = 8
# kafka settings per measured variant of bench/recovery.py (merged into the daemon's configuration)
RECOVERY_VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "dynamic_membership": {"static_membership": False},
    "session_6s": {"session_timeout_ms": 6000},
}
LATENCY_MS_ONE_WAY = 2.5  # the latency section's proxy: about 5 ms added per round trip


class Run:
    def __init__(self, mode: str, only: set[str] | None, out: Path = RESULTS) -> None:
        self.out = out
        self.mode = mode
        self.only = only
        self.results: dict[str, Any] = {
            "mode": mode, "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "command": "python -m bench" + (" --quick" if mode == "quick" else "")
                       + (f" --only {','.join(sorted(only))}" if only else ""),
            "argv": shlex.join(sys.argv), "machine": env.machine(), "sizes": SIZES[mode],
            "dynamo_concurrency": CONCURRENCY, "sections": {},
        }
        if only and out.exists():
            # A partial re-run replaces its own sections and keeps the others (each section
            # records its own load average and time; the re-run is listed under `reruns`).
            previous = json.loads(out.read_text())
            reruns = previous.get("reruns", [])
            reruns.append({"command": self.results["command"], "date": self.results["date"],
                           "load_average_start": self.results["machine"]["load_average_start"]})
            self.results = {**previous, "reruns": reruns}

    def section(self, name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
        if self.only and name not in self.only and name != "dataset":  # every section needs the data
            return None
        print(f"== {name} (load average {env.load_average()})", flush=True)
        started = time.monotonic()
        try:
            out = fn()
        except Exception as exc:
            out = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=6)}
            print(f"   FAILED: {out['error']}", flush=True)
        out["load_average_after"] = env.load_average()
        out["date"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        out["section_s"] = round(time.monotonic() - started, 1)
        self.results["sections"][name] = out
        self.save()
        return out

    def save(self) -> None:
        self.out.write_text(json.dumps(self.results, indent=2, default=str) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="reduced sizes (a few minutes)")
    parser.add_argument("--only", default="", help="comma-separated sections: verifier,pure_path,kafka_clients,"
                                                   "shadow,mismatch,latency,scaling,recovery,reconcile,cluster,cost")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results file (default bench/results.json)")
    args = parser.parse_args(argv)
    # The daemon's console format: drift keys print as the JSON text drift.jsonl has, not a repr.
    from parity.logging import configure_logging

    configure_logging(json=False)
    mode = "quick" if args.quick else "full"
    size = SIZES[mode]
    only = {s for s in args.only.split(",") if s} or None
    run = Run(mode, only, args.out)
    stack = env.LocalStack.start()
    try:
        _sections(run, stack, size)
    finally:
        stack.stop()
        if not only:
            run.results["machine"]["load_average_end"] = env.load_average()
        run.save()
    print_summary(run.results, run.out)
    return 0


def _sections(run: Run, stack: Any, size: dict[str, Any]) -> None:
    work = stack.state_dir / "work"
    raw = dataset.raw_config(stack, prefix="bench", target="BenchAcc", group="bench-verify",
                             state_dir=work / "verify", concurrency=CONCURRENCY)
    cfg = dataset.config(raw)
    data: dict[str, Any] = {}

    def produce() -> dict[str, Any]:
        ds = dataset.produce(stack, keys=size["keys"], events=size["events"])
        data["ds"] = ds
        client = verifier.dynamodb_client(cfg.dynamodb)
        dataset.create_dynamo_table(client, "BenchAcc")
        finals = dataset.final_items(cfg, ds.records)
        data["finals"] = finals
        fill_s = dataset.batch_write(client, "BenchAcc", finals, CONCURRENCY)
        return {"events": len(ds.records), "keys": ds.keys, "partitions": ds.end_offsets,
                "bridge_seconds": round(ds.produce_s, 1), "bridge_events_per_s": round(len(ds.records) / ds.produce_s),
                "dynamodb_fill": {"items": len(finals), "seconds": round(fill_s, 2),
                                  "items_per_s": round(len(finals) / fill_s)}}

    out = run.section("dataset", produce)
    if out is None or "error" in out:
        return
    ds = data["ds"]
    finals = data["finals"]

    def pure() -> dict[str, Any]:
        actual = {i["PK"]: i for i in finals}
        for general in (False, True):  # warm the schema caches and the compiled plan
            purepath.run(cfg, ds.records[:2000], actual, general=general)
        # The compiled plan (the daemon's path) and the general path it stands in for, interleaved
        # on the same records in the same minutes (a shared core's speed drifts): best of three each.
        runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
        for _ in range(3):
            for general in (False, True):
                runs[general].append(purepath.run(cfg, ds.records, actual, general=general))
        best = {g: min(r, key=lambda x: x["cpu_s"]) for g, r in runs.items()}
        return {**best[False], "general_path": best[True],
                "plan_speedup_cpu": round(best[True]["cpu_s"] / best[False]["cpu_s"], 2),
                "calibration": purepath.calibration()}

    def verify() -> dict[str, Any]:
        keys = verifier.event_keys(cfg, ds.records)
        floor1 = verifier.raw_batch_get(cfg, keys, CONCURRENCY)
        parity = verifier.run_daemon(cfg, len(ds.records), timeout=600)
        floor2 = verifier.raw_batch_get(cfg, keys, CONCURRENCY)
        floor_rate = (floor1["events_per_s"] + floor2["events_per_s"]) / 2
        naive = verifier.naive_get_item(cfg, ds.records[: size["naive_sample"]], CONCURRENCY)
        return {"parity": parity, "floor_batch_get_before": floor1, "floor_batch_get_after": floor2,
                "naive_get_item": naive,
                "ratio_parity_over_floor": round(parity["events_per_s"] / floor_rate, 3),
                "ratio_parity_over_naive": round(parity["events_per_s"] / naive["events_per_s"], 2)}

    run.section("pure_path", pure)
    run.section("verifier", verify)
    run.section("kafka_clients", lambda: verifier.kafka_clients(stack.kafka.bootstrap, ds.topic, len(ds.records)))
    def shadow_apply() -> dict[str, Any]:
        # Both write modes of shadow.py, each side by side with its own raw BatchWriteItem run;
        # the headline is the default mode (transactions).
        out: dict[str, Any] = {}
        for writes in ("transactions", "single"):
            raw_cfg = dataset.raw_config(stack, prefix="bench", target=f"BenchShadow_{writes}",
                                         group="bench-shadow", state_dir=work / f"shadow-{writes}", mode="shadow",
                                         concurrency=CONCURRENCY)
            raw_cfg["tables"][0]["shadow_writes"] = writes
            out[writes] = shadow.run(dataset.config(raw_cfg), ds.records,
                                     verifier.state_dir(work, f"shadow-{writes}"), CONCURRENCY, f"BenchRaw_{writes}")
        return {**out["transactions"], "shadow_writes": "transactions", "single": out["single"]}

    run.section("shadow", shadow_apply)

    def mismatches() -> dict[str, Any]:
        # The all-match rate of the same daemon path, measured just before (its own group).
        keys = verifier.event_keys(cfg, ds.records)
        floor = verifier.raw_batch_get(cfg, keys, CONCURRENCY)
        match_cfg = dataset.config(dataset.raw_config(
            stack, prefix="bench", target="BenchAcc", group="bench-verify-allmatch", state_dir=work / "allmatch",
            concurrency=CONCURRENCY))
        all_match = verifier.run_daemon(match_cfg, len(ds.records), timeout=600)
        mis_raw = dataset.raw_config(stack, prefix="bench", target="BenchMis", group="bench-verify-mismatch",
                                     state_dir=work / "mismatch", concurrency=CONCURRENCY)
        out = mismatch.run(mis_raw, ds.records, finals, CONCURRENCY, timeout=900)
        return {"mismatch": out, "all_match": all_match, "floor_batch_get": floor,
                "ratio_mismatch_over_all_match": round(out["events_per_s"] / all_match["events_per_s"], 3),
                "ratio_all_match_over_floor": round(all_match["events_per_s"] / floor["events_per_s"], 3)}

    run.section("mismatch", mismatches)

    def latency() -> dict[str, Any]:
        # DynamoDB behind a delaying proxy (its own process); every figure here goes through it.
        proxy = latency_proxy.start(stack.dynamodb.endpoint, LATENCY_MS_ONE_WAY)
        try:
            def proxied(raw_cfg: dict[str, Any]) -> dict[str, Any]:
                raw_cfg["dynamodb"]["endpoint"] = proxy.endpoint
                return raw_cfg

            lat_cfg = dataset.config(proxied(dataset.raw_config(
                stack, prefix="bench", target="BenchAcc", group="bench-verify-latency",
                state_dir=work / "latency", concurrency=CONCURRENCY)))
            keys = verifier.event_keys(lat_cfg, ds.records)
            floor1 = verifier.raw_batch_get(lat_cfg, keys, CONCURRENCY)
            parity = verifier.run_daemon(lat_cfg, len(ds.records), timeout=900)
            floor2 = verifier.raw_batch_get(lat_cfg, keys, CONCURRENCY)
            floor_rate = (floor1["events_per_s"] + floor2["events_per_s"]) / 2
            out: dict[str, Any] = {
                "delay_ms_one_way": LATENCY_MS_ONE_WAY, "concurrency": CONCURRENCY,
                "verifier": {"parity": parity, "floor_batch_get_before": floor1, "floor_batch_get_after": floor2,
                             "ratio_parity_over_floor": round(parity["events_per_s"] / floor_rate, 3)}}
            for writes in ("transactions", "single"):
                raw_cfg = proxied(dataset.raw_config(
                    stack, prefix="bench", target=f"BenchLatShadow_{writes}", group="bench-shadow-latency",
                    state_dir=work / f"lat-shadow-{writes}", mode="shadow", concurrency=CONCURRENCY))
                raw_cfg["tables"][0]["shadow_writes"] = writes
                out[f"shadow_{writes}"] = shadow.run(
                    dataset.config(raw_cfg), ds.records, verifier.state_dir(work, f"lat-shadow-{writes}"),
                    CONCURRENCY, f"BenchLatRaw_{writes}")
            return out
        finally:
            proxy.stop()

    run.section("latency", latency)

    def scale() -> dict[str, Any]:
        one = scaling.run(raw, ds.topic, ds.end_offsets, 1, work, timeout=900)
        two = scaling.run(raw, ds.topic, ds.end_offsets, 2, work, timeout=900)
        return {"one": one, "two": two, "ratio_two_over_one": round(two["events_per_s"] / one["events_per_s"], 3)}

    run.section("scaling", scale)

    def recover() -> dict[str, Any]:
        # The shipped session timeout (the test configuration's 6 s is left out) and the static
        # membership variant, restarts alternated between them.
        shipped = {**raw, "kafka": {k: v for k, v in raw["kafka"].items() if k != "session_timeout_ms"}}
        return recovery.run(shipped, stack.kafka.bootstrap, ds.records, len(ds.end_offsets), work,
                            variants=RECOVERY_VARIANTS, runs=size["recovery_runs"])

    run.section("recovery", recover)

    def recon() -> dict[str, Any]:
        runs = []
        for rows in size["reconcile_rows"]:
            runs.append(reconcile.run(stack, rows))
            # Saved as it goes: the 1M-row case takes long enough to be cut short.
            run.results["sections"]["reconcile"] = {"runs": runs, "partial": True}
            run.save()
        out: dict[str, Any] = {"runs": runs}
        rss = [r["peak_rss"].get("peak_rss_mb") for r in runs]
        if all(isinstance(x, int) for x in rss):
            out["rss_growth_mb"] = rss[-1] - rss[0]
        return out

    run.section("reconcile", recon)
    # The same reconcile on a Dask LocalCluster of 1, 2 and 4 worker processes (bench/cluster.py).
    run.section("cluster", lambda: cluster.run(stack.pg, stack.dynamodb, stack.state_dir, size["cluster_rows"]))
    run.section("cost", lambda: cost.model(finals))


def _ratio(a: Any, b: Any) -> Any:
    """a / b to 3 places, or "n/a" when either is missing (a section not run)."""
    return round(a / b, 3) if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else "n/a"


def print_summary(results: dict[str, Any], out: Path = RESULTS) -> None:
    s = results["sections"]

    def get(*path: str) -> Any:
        node: Any = s
        for p in path:
            if not isinstance(node, dict) or p not in node:
                return "n/a"
            node = node[p]
        return node

    lines = [
        ("verifier / raw BatchGetItem floor (target >= 0.8)", get("verifier", "ratio_parity_over_floor")),
        ("verifier / naive GetItem per event (target >= 5)", get("verifier", "ratio_parity_over_naive")),
        ("pure path events/s, one core, CPU time (target >= 100k)", get("pure_path", "events_per_s_cpu")),
        ("  same, the general path (no compiled plan), same run", get("pure_path", "general_path", "events_per_s_cpu")),
        ("confluent-kafka / kafka-python consume rate", get("kafka_clients", "ratio_confluent_over_kafka_python")),
        ("shadow apply events/s / raw BatchWriteItem items/s (target >= 0.7)", get("shadow", "ratio_rate")),
        ("  same, shadow_writes: single (one conditional UpdateItem each)", get("shadow", "single", "ratio_rate")),
        ("  shadow (transactions) / raw conditional TransactWriteItems of the same items",
         get("shadow", "ratio_rate_over_raw_transactions")),
        ("  shadow (single) / raw conditional PutItem, one item a call (target >= 0.9)",
         get("shadow", "single", "ratio_rate_over_raw_conditional")),
        ("  shadow events/s, single / transactions (single costs half the WCU)",
         _ratio(get("shadow", "single", "shadow_apply", "events_per_s"),
                get("shadow", "shadow_apply", "events_per_s"))),
        ("verifier with 5% healing + 0.5% drifting mismatches / all-match (target >= 0.7)",
         get("mismatch", "ratio_mismatch_over_all_match")),
        ("  recheck store peak / capacity",
         f"{get('mismatch', 'mismatch', 'recheck_store_peak')} / {get('mismatch', 'mismatch', 'recheck_capacity')}"),
        ("+5 ms RTT: verifier / raw BatchGetItem floor, same latency (target >= 0.9)",
         get("latency", "verifier", "ratio_parity_over_floor")),
        ("+5 ms RTT: shadow (transactions) / raw TransactWriteItems (target >= 0.9)",
         get("latency", "shadow_transactions", "ratio_rate_over_raw_conditional")),
        ("+5 ms RTT: shadow (single) / raw conditional PutItem (target >= 0.9)",
         get("latency", "shadow_single", "ratio_rate_over_raw_conditional")),
        ("+5 ms RTT: shadow events/s, single / transactions",
         _ratio(get("latency", "shadow_single", "shadow_apply", "events_per_s"),
                get("latency", "shadow_transactions", "shadow_apply", "events_per_s"))),
        ("2 daemons / 1 daemon throughput", get("scaling", "ratio_two_over_one")),
    ]
    for r in get("reconcile", "runs") if isinstance(get("reconcile", "runs"), list) else []:
        lines.append((f"reconcile {r['rows']} rows / plain parallel Scan wall time (target <= 1.3)",
                      r["ratio_reconcile_over_scan"]))
        lines.append(("  same with grace_period_s 0 (no in-flight wait)",
                      r.get("reconcile_grace_0", {}).get("ratio_over_scan", "n/a")))
        lines.append(("  same / parity's own raw-decoded Scan (the wire floor)",
                      r.get("ratio_reconcile_over_raw_scan", "n/a")))
        lines.append((f"reconcile {r['rows']} rows peak RSS MB (largest Postgres worker process apart)",
                      f"{r['peak_rss'].get('peak_rss_mb', 'n/a')} (+{r['peak_rss'].get('largest_child_mb', 'n/a')})"))
    lines.append(("reconcile peak RSS growth MB (target < 100)", get("reconcile", "rss_growth_mb")))
    for variant in RECOVERY_VARIANTS:
        lines.append((f"recovery after kill -9, {variant}: spawn -> first commit s (median)",
                      get("recovery", variant, "summary", "first_commit_s", "median")))
    for c in get("cluster", "cluster") if isinstance(get("cluster", "cluster"), list) else []:
        lines.append((f"cluster reconcile {get('cluster', 'rows')} rows, {c['workers']} worker(s) / in process "
                      "(2 cores: overhead only)", c["ratio_over_in_process"]))
    lines.append(("verify RCU per million events", get("cost", "per_million_rows", "verify_rcu")))
    lines.append(("shadow WCU per million events: single / transactions",
                  f"{get('cost', 'per_million_rows', 'shadow_wcu')} / "
                  f"{get('cost', 'per_million_rows', 'shadow_wcu_transactional')}"))
    print("\nRatios (" + results["mode"] + f", load average at start {results['machine']['load_average_start']}):")
    for label, value in lines:
        print(f"  {label:72s} {value}")
    errors = [k for k, v in s.items() if isinstance(v, dict) and "error" in v]
    if errors:
        print(f"  sections that failed: {', '.join(errors)} (see {out})")


if __name__ == "__main__":
    sys.exit(main())
