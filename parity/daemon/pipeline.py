"""Turning a batch of Kafka records into outcomes: decode -> collapse -> verify | shadow.

Every record ends in exactly one outcome, counted per source table (parity.core.outcomes). The
steps, each in its own module:

  decode     record -> change (`Work`), TRUNCATE barrier, or an outcome at once (parity.daemon.decode)
  collapse   the newest event per key; older ones of the batch are `superseded`, an event not newer
             than one already seen is a `duplicate` (parity.core.dedupe)
  dispatch   a change lacking a mapped column is `not_compared`; the rest go to verify or shadow
  verify     reads and verdicts, re-checks within grace, drift (parity.daemon.verify)
  shadow     conditional writes (parity.daemon.shadow), barriers applied in stream order

Reads overlap decoding (parity.daemon.readahead): keys of verify tables are read while the rest
of the batch is decoded. Keys whose event will be a duplicate are not read ahead.

The daemon loop (parity.daemon.run) owns I/O ordering: sinks, then the state store, then commit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from parity.adapters.kafka import Record
from parity.adapters.ports import DynamoReads
from parity.core.columns import COLUMN_MISSING
from parity.core.compare import Match, Mismatch
from parity.core.config import ParityConfig
from parity.core.dedupe import LsnMemory
from parity.core.expect import carry_toast
from parity.core.ledger import OffsetLedger, TopicPartition
from parity.core.mapping import ItemMapper
from parity.core.outcomes import Outcome
from parity.core.recheck import KeyId, RecheckStore
from parity.daemon.batch import Barrier, BatchResult, Item, OpenDrift, ShadowPort, Work
from parity.daemon.decode import Decoder
from parity.daemon.readahead import ReadAhead
from parity.daemon.verify import Verifier


class Pipeline:
    """Decodes and resolves batches; the daemon loop owns I/O ordering (sinks, then commit)."""

    def __init__(
        self,
        config: ParityConfig,
        dynamo: DynamoReads,
        *,
        shadow: ShadowPort | None = None,
        dedupe_capacity: int = 1_000_000,
    ) -> None:
        self.config = config
        self.dynamo = dynamo
        self.shadow = shadow
        self.mappers = {t.source: ItemMapper(t) for t in config.tables}
        self.ledger = OffsetLedger()
        self.rechecks = RecheckStore(config.daemon.recheck_capacity)
        # Newest LSN seen per key: a redelivered or older event is a duplicate, not a new check.
        self.lsns = LsnMemory(dedupe_capacity)
        # Per partition, the source time up to which every event has been consumed.
        self.progress: dict[TopicPartition, float] = {}
        self.decoder = Decoder(config, self.mappers, self.progress)
        self.verifier = Verifier(
            config, dynamo, self.mappers, ledger=self.ledger, rechecks=self.rechecks, progress=self.progress
        )

    # The daemon sets and reads these; the verifier acts on them.

    @property
    def caught_up(self) -> Callable[[TopicPartition], bool]:
        return self.verifier.caught_up

    @caught_up.setter
    def caught_up(self, value: Callable[[TopicPartition], bool]) -> None:
        self.verifier.caught_up = value

    @property
    def grace_floor(self) -> float:
        return self.verifier.grace_floor

    @grace_floor.setter
    def grace_floor(self, value: float) -> None:
        self.verifier.grace_floor = value

    @property
    def open_drift(self) -> dict[KeyId, tuple[str, int]]:
        return self.verifier.open_drift

    def schema_drift(self) -> dict[str, list[str]]:
        """Source columns seen in events but absent from the mapping (for status and logs)."""
        return self.decoder.schema_drift()

    def columns_missing(self) -> dict[str, list[str]]:
        """Mapped columns that events arrived without (for status and logs)."""
        return self.decoder.columns_missing()

    def verdict(
        self, mapper: ItemMapper, expected: Item | None, actual: Item | None, unavailable: tuple[str, ...]
    ) -> Match | Mismatch:
        return self.verifier.verdict(mapper, expected, actual, unavailable)

    # -- one batch -----------------------------------------------------------------------------

    def process(self, records: Sequence[Record], now: float) -> BatchResult:
        result = BatchResult()
        segment: list[Work] = []
        ahead = ReadAhead(self.dynamo)
        for item in self._decode(records, now, result, ahead):
            if isinstance(item, Barrier):
                self._dispatch(self.collapse(segment, result), now, result, ahead)
                segment = []
                self._shadow().truncate(item.mapping, item.lsn, result)
            else:
                segment.append(item)
        self._dispatch(self.collapse(segment, result), now, result, ahead)
        self._backlog(result)
        return result

    def recheck_due(self, now: float, result: BatchResult | None = None) -> BatchResult:
        result = result or BatchResult()
        self.verifier.recheck_due(now, result)
        self._backlog(result)
        return result

    def reread_open(
        self,
        entries: Sequence[OpenDrift], now: float, result: BatchResult
    ) -> None:
        self.verifier.reread_open(entries, now, result)

    def _decode(
        self, records: Sequence[Record], now: float, result: BatchResult, ahead: ReadAhead
    ) -> list[Work | Barrier]:
        works: list[Work | Barrier] = []
        for rec in records:
            self.ledger.consumed(rec.tp, rec.offset)
            item = self.decoder.decode(rec, now, result)
            if item is None:
                continue
            works.append(item)
            if not isinstance(item, Work) or item.mapping.mode != "verify" or item.missing:
                continue
            if not self.lsns.not_newer(item.key_id, item.lsn) or item.event.snapshot:  # else a duplicate
                ahead.offer(item.target, item.mapping, item.key, item.key_id)
        return works

    def collapse(self, works: list[Work], result: BatchResult) -> list[Work]:
        """Keep the newest event per key; older ones in the batch are superseded or duplicates."""
        newest: dict[KeyId, Work] = {}
        for w in works:
            op = w.event.op.value
            if self.lsns.not_newer(w.key_id, w.lsn) and not w.event.snapshot:
                result.count(w.mapping.source, Outcome.DUPLICATE, op=op)
                continue
            prev = newest.get(w.key_id)
            if prev is not None:
                if w.lsn < prev.lsn:
                    result.count(w.mapping.source, Outcome.DUPLICATE, op=op)
                    continue
                if w.lsn == prev.lsn and w.event.op == prev.event.op:
                    result.count(w.mapping.source, Outcome.DUPLICATE, op=op)
                    continue
                w.expectation = carry_toast(prev.expectation, w.expectation)
                result.count(prev.mapping.source, Outcome.SUPERSEDED, op=prev.event.op.value)
            newest[w.key_id] = w
        for key_id, w in newest.items():
            self.lsns.remember(key_id, w.lsn, w.record.tp)
            pending = self.rechecks.remove(key_id)
            if pending is not None:
                self.ledger.release(pending.tp, pending.offset)
                result.count(pending.source, Outcome.SUPERSEDED, op=pending.op)
        return list(newest.values())

    def _dispatch(self, works: list[Work], now: float, result: BatchResult, ahead: ReadAhead) -> None:
        for w in works:
            if w.missing:
                # Comparing the rest would call the event a match with an attribute unchecked;
                # applying it (shadow) would leave that attribute silently stale. Neither: counted.
                result.count(w.mapping.source, Outcome.NOT_COMPARED, op=w.event.op.value)
                for col in w.missing:
                    result.not_compared[(w.mapping.source, col, COLUMN_MISSING)] += 1
        works = [w for w in works if not w.missing]
        verify = [w for w in works if w.mapping.mode == "verify"]
        shadow = [w for w in works if w.mapping.mode == "shadow"]
        if verify:
            self.verifier.verify(verify, now, result, ahead)
        if shadow:
            self._shadow().apply(shadow, now, result)

    def _shadow(self) -> ShadowPort:
        if self.shadow is None:
            raise RuntimeError("shadow-mode table configured but no shadow applier wired")
        return self.shadow

    def _backlog(self, result: BatchResult) -> None:
        """The recheck store as it stands after the batch, for telemetry (from the store's per-table
        counts: a step asks twice, and the store can hold up to `recheck_max_keys` checks)."""
        pending = self.rechecks.pending_by_source()
        oldest = self.rechecks.oldest_by_source()
        result.recheck_backlog = {t.source: pending.get(t.source, 0) for t in self.config.tables}
        result.recheck_oldest = {t.source: oldest[t.source] for t in self.config.tables if t.source in oldest}

    def revoke(self, tps: list[TopicPartition]) -> None:
        self.rechecks.drop_partitions(set(tps))
        self.ledger.forget(tps)
        # The partitions' uncommitted records will be read again (after a rewind, or by their next
        # owner): their keys' newest LSNs must be forgotten too, or the re-read events would be
        # taken for duplicates and resolved without a check, losing pending drift.
        self.lsns.forget_partitions(tps)
        for tp in tps:
            self.progress.pop(tp, None)
