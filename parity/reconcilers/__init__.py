"""Reconcile and repair: whole tables compared, and drift fixed from Postgres as the source of truth.

What lives here: `parity reconcile` and `parity repair` (`cli`), a reconcile run reading both
sides in parallel into bucket digests and spill files, then narrowing mismatched buckets to
exact keys (`reconcile`, `postgres`, `dynamo`, `tally`, `checkpoint`, `coverage`), its report
(`report`), repair from that report (`repair`), the periodic reconciles inside `parity run`
(`schedule`) and publishing a standalone run's metrics (`publish`). What does not: the streaming
verification of change events (the daemon) and the comparison rules (`parity.core`).
"""
