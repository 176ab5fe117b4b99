"""Metrics: what parity tells Prometheus, and the HTTP endpoints it is served on.

What lives here: the catalog of every metric with its labels and buckets (`catalog`), the
/metrics, /healthz, /readyz and /status server (`server`), the /status document read back from
the registry (`status`), and the PromQL read out of the dashboards and alert rules so tests can
check them against the catalog (`dashboards`). What does not: deciding what to count (the daemon
and the reconcilers record into the catalog's metrics) or the checks /readyz runs (passed in).
"""
