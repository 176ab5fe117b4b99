"""Frozen, validated configuration types.

Loading (YAML, `${ENV}` interpolation, file names in errors) lives in `parity.config_loader`;
this module only says what a valid configuration is. Every model rejects unknown keys, so a
typo is an error naming its path instead of a silently ignored setting.

A table mapping says how one Postgres table becomes DynamoDB items:

    tables:
      - source: public.subscriber
        primary_key: [ban, subscriber_no]
        target: BillingSystem
        keys: {PK: "BAN#{ban}", SK: "SUB#{subscriber_no}"}   # first = partition key, second = sort key
        indexes: {GSI1PK: "SUB#{subscriber_no}", GSI1SK: "BAN#{ban}"}
        constants: {EntityType: SUBSCRIBER}
        columns:                                             # every source column, with an optional rule
          ban: {}
          subscriber_no: {name: SubscriberNo}
          status: {}
          features: {type: string_set}                       # text[] -> SS; an empty array -> no attribute

NULL and empty collections. DynamoDB cannot store an empty set, so an empty Postgres array in a
`string_set` / `number_set` column follows DynamoDB's convention and leaves the attribute out
(`empty_set_as: absent`, the default), in verify, shadow, reconcile and repair alike. Other
representations in use: `empty_set_as: null` (a NULL attribute) and `empty_set_as: empty_list`
(an empty list, `L: []`). NULL is written by `null_as` (absent, the default, or `null`).
Normally NULL and absent compare alike. A set column whose NULL and empty array take different
ones of the two (`null_as: null` with the default `empty_set_as: absent`, or `empty_set_as: null`
with the default `null_as: absent`) keeps them apart: there, a NULL attribute and an absent one
are different values, so NULL vs empty is verified too. `empty_set_as: empty_list` keeps them
apart by itself. Empty lists (`type: list`), empty maps (`json_map`) and empty strings, also as
set members, are storable values and stay what they are.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

# verify / shadow: Postgres is the source of truth (Debezium events checked against or applied to
# DynamoDB). reverse: after cutover DynamoDB is (its Stream checked against Postgres, docs/reverse.md).
Mode = Literal["verify", "shadow", "reverse"]

# How a column's value is written to / compared with DynamoDB.
AttrType = Literal[
    "auto",  # by the decoded value: number -> N, text -> S, bool -> BOOL, bytes -> B, json -> M/L ...
    "string",
    "number",
    "bool",
    "binary",
    "timestamp_iso",  # 2024-03-01T12:00:00.123456Z (UTC when the source carries a zone)
    "timestamp_epoch_s",
    "timestamp_epoch_ms",
    "date_iso",
    "json_map",  # json/jsonb as a DynamoDB map or list
    "json_string",  # json/jsonb as its compact JSON text
    "list",
    "string_set",
    "number_set",
]

# Postgres type of a column, needed only to decode Debezium JSON *without* schemas, where a
# NUMERIC arrives as bare base64 bytes and a timestamp as a bare integer.
PgTypeHint = Literal[
    "numeric",
    "timestamp",
    "timestamptz",
    "date",
    "time",
    "json",
    "bytea",
    "text",
    "integer",
    "float",
    "boolean",
    "uuid",
    "array",
    "interval",
]
Precision = Literal["s", "ms", "us"]
SET_TYPES: frozenset[str] = frozenset({"string_set", "number_set"})


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnRule(_Frozen):
    """How one source column maps to a target attribute and how it is compared."""

    name: str | None = None  # target attribute name; default: the column name
    type: AttrType = "auto"
    pg_type: PgTypeHint | None = None
    scale: int | None = Field(default=None, ge=0, le=1000)  # NUMERIC scale for schemaless precise mode
    # Unit of a bare integer timestamp/time without schemas (connect mode and timestamp(0..3): ms).
    time_unit: Literal["ms", "us", "ns"] | None = None
    exclude: bool = False  # the column exists but is not part of the item
    tolerance: float | None = Field(default=None, ge=0)  # absolute tolerance for floating values
    precision: Precision | None = None  # timestamps written, compared and hashed truncated to this unit
    # How NULL is written. Compare treats NULL and absent alike, except on a set column whose empty
    # array is written as the other one (module docstring).
    null_as: Literal["absent", "null"] = "absent"
    # string_set / number_set only: how an empty array is written (DynamoDB refuses an empty set).
    empty_set_as: Literal["absent", "null", "empty_list"] = "absent"
    empty_string_as_null: bool = False
    redact: bool = False  # never show this column's values in reports, drift records or logs

    @model_validator(mode="after")
    def _empty_set_rule(self) -> ColumnRule:
        if self.empty_set_as != "absent" and self.type not in SET_TYPES:
            raise _PathError("empty_set_as", f"applies to string_set and number_set columns, not type {self.type}")
        return self

    def attribute(self, column: str) -> str:
        return self.name or column

    @property
    def null_and_empty_apart(self) -> bool:
        """A set column whose NULL is absent and whose empty array is NULL, or the reverse: there
        NULL and absent are different values (an empty list never looks like either)."""
        return self.type in SET_TYPES and {self.null_as, self.empty_set_as} == {"absent", "null"}


# Debezium's ExtractNewRecordState `delete.tombstone.handling.mode` (3.x; `none` is 2.x's
# `delete.handling.mode=none`, which left a tombstone per delete like `tombstone`).
DeleteHandling = Literal["drop", "tombstone", "rewrite", "rewrite-with-tombstone", "delete-to-tombstone", "none"]
class FlattenedEvents(_Frozen):
    """How the table's topic was flattened by Debezium's `ExtractNewRecordState` transform
    (`transforms.unwrap.*`): the same settings, so parity knows what each record carries.
    docs/debezium.md says what each variant loses."""

    # transforms.unwrap.add.fields, as written there ("op,lsn,source.ts_ms" or with renames
    # "source.ts_ms:EVENT_TS"), as a list.
    add_fields: tuple[str, ...] = ()
    add_fields_prefix: str = "__"  # transforms.unwrap.add.fields.prefix
    delete_handling: DeleteHandling = "tombstone"  # transforms.unwrap.delete.tombstone.handling.mode
    # `drop` loses every delete: verify cannot see a deleted row's leftover item, and a row created
    # and deleted before its create is verified reads as missing_in_target drift. Refused unless
    # acknowledged here (reconcile then has to find the deletes).
    accept_lost_deletes: bool = False

    @field_validator("add_fields", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        # Pasted from the connector config: "op,lsn,source.ts_ms".
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        return value

    def field_name(self, name: str) -> str | None:
        """The record's field that `add.fields` entry `name` (e.g. "source.ts_ms") becomes, or None
        when it is not added. `op` matches "op"; "lsn" matches "lsn" and "source.lsn"."""
        wanted = {name, f"source.{name}"} if "." not in name else {name, name.split(".", 1)[1]}
        for entry in self.add_fields:
            field, _, renamed = entry.partition(":")
            if field in wanted:
                return renamed or self.add_fields_prefix + field.replace(".", "_")
        return None

    @property
    def deletes(self) -> Literal["rewrite", "tombstone", "none"]:
        """How a delete arrives: a `__deleted: "true"` record, a tombstone, or not at all."""
        if self.delete_handling in ("rewrite", "rewrite-with-tombstone"):
            return "rewrite"
        if self.delete_handling == "drop":
            return "none"
        return "tombstone"

    @property
    def ordered_by_lsn(self) -> bool:
        """Whether events are ordered by their LSN; otherwise by Kafka offset within a partition
        (a tombstone carries no LSN, so a table whose deletes are tombstones orders by offset)."""
        return self.field_name("lsn") is not None and self.deletes != "tombstone"


class MskIamAuth(_Frozen):
    """Amazon MSK IAM: SASL_SSL + OAUTHBEARER with a token signed from the AWS credentials of the
    process (the `parity[msk]` extra; parity.kafka_auth builds the client settings)."""

    type: Literal["msk_iam"]
    region: str = Field(min_length=1)


# Settings that msk_iam sets itself: a second source for them would contradict it or add a password.
MSK_IAM_OWNS = ("security.protocol", "sasl.mechanism", "sasl.mechanisms", "sasl.username", "sasl.password",
                "sasl.oauthbearer.", "sasl.kerberos.", "oauth_cb")


# Client properties whose value is a secret (librdkafka's sasl.password, ssl.key.password,
# ssl.keystore.password, sasl.oauthbearer.client.secret, ssl.key.pem, the private key of
# sasl.oauthbearer.assertion.*, a Java-style sasl.jaas.config, ...). Matched on the name, so a
# property added by a later librdkafka is covered when it is named like the others.
_SECRET_OPTION = re.compile(
    r"(?:^|[._\-])(?:password|passwd|secret|passphrase|token|credentials?)$"
    r"|(?:^|[._\-])key[._\-]pem$|(?:^|[._\-])jaas[._\-]config$|(?:^|[._\-])oauthbearer[._\-]config$",
    re.IGNORECASE,
)
SECRET_MASK = "**********"  # noqa: S105 - the mask pydantic's SecretStr shows, not a password


def is_secret_option(name: str) -> bool:
    """Whether a client property (kafka.options key) holds a secret, which is never shown."""
    return bool(_SECRET_OPTION.search(name))


# librdkafka settings parity's guarantees rest on, with why; `kafka.options` may not set them.
# Offsets are committed only after every record before them is resolved (auto commit and the
# automatic offset store would commit records not yet verified); a new group starts at the
# beginning so no record goes without an outcome; the drift and dead-letter producers are
# idempotent with acks=all because the consumer's offsets are committed right after they flush.
# Aliases are listed because librdkafka accepts them as the same setting.
RESERVED_KAFKA_OPTIONS: dict[str, str] = {
    "enable.auto.commit": "offsets are committed only after the records before them are verified",
    "auto.commit.enable": "offsets are committed only after the records before them are verified",
    "enable.auto.offset.store": "offsets are stored only after the records before them are verified",
    "group.id": "set kafka.group_id",
    "auto.offset.reset": "a new consumer group starts at the earliest offset, so every record gets an outcome",
    "enable.idempotence": "drift and dead letters are produced idempotently before offsets are committed",
    "acks": "drift and dead letters are acknowledged by all in-sync replicas before offsets are committed",
    "request.required.acks": "drift and dead letters are acknowledged by all in-sync replicas before offsets "
    "are committed",
    "bootstrap.servers": "set kafka.bootstrap_servers",
    "metadata.broker.list": "set kafka.bootstrap_servers",
}


class KafkaConfig(_Frozen):
    bootstrap_servers: str
    topic_prefix: str
    group_id: str = "parity"
    # Passed to the Kafka client unchanged (security.protocol, sasl.*, ssl.* ...), except the
    # settings of RESERVED_KAFKA_OPTIONS, which are refused.
    options: dict[str, str] = Field(default_factory=dict)
    auth: Annotated[MskIamAuth, Field(discriminator="type")] | None = None
    # A regex (full match) of further topics to consume: routed topics (RegexRouter,
    # ByLogicalTableRouter) whose records are matched to tables by their source (docs/debezium.md).
    # A record on such a topic that belongs to no mapped table is counted as `unmapped`.
    topic_pattern: str | None = None
    drift_topic: str | None = "parity.drift"
    dead_letter_topic: str = "parity.dlq"
    session_timeout_ms: int = Field(default=10_000, ge=1000)
    # Static group membership (KIP-345): the daemon joins with a `group.instance.id` made once and
    # kept in its state directory, so a replica restarted after a crash takes its partitions back
    # at once instead of waiting for its dead predecessor's session to expire and a rebalance
    # (docs/deploy.md). `group.instance.id` in `options` replaces the generated one.
    static_membership: bool = True

    @field_validator("bootstrap_servers")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        # `${PARITY_KAFKA_BOOTSTRAP}` set to "" would otherwise make the client wait for nothing.
        if not value.strip():
            raise ValueError("empty")
        return value

    @field_validator("topic_pattern")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _auth_owns_its_settings(self) -> KafkaConfig:
        if self.auth is not None:
            clash = sorted(k for k in self.options if k.startswith(MSK_IAM_OWNS))
            if clash:
                raise _PathError("options", f"{', '.join(clash)}: set by kafka.auth (type msk_iam); remove "
                                            "them (no SASL password with IAM authentication)")
        return self

    @field_validator("options")
    @classmethod
    def _not_reserved(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            why = RESERVED_KAFKA_OPTIONS.get(name.strip().lower())
            if why is not None:
                raise _PathError(name, f"parity sets this itself and it cannot be overridden: {why}")
        return value

    def topic_for(self, source: str) -> str:
        """Debezium's default topic of table `source`: `<topic_prefix>.<schema>.<table>`."""
        return f"{self.topic_prefix}.{source}"

    def matches_pattern(self, topic: str) -> bool:
        return self.topic_pattern is not None and re.fullmatch(self.topic_pattern, topic) is not None

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        # repr() and str() of the config (and of every model holding it) mask secret options; the
        # clients still get the real values from `options`.
        for name, value in super().__repr_args__():
            if name == "options":
                value = {k: SECRET_MASK if is_secret_option(k) else v for k, v in value.items()}
            yield name, value


class PostgresConfig(_Frozen):
    dsn: SecretStr
    connect_timeout_s: float = Field(default=10, gt=0)


class DynamoConfig(_Frozen):
    endpoint: str | None = None  # None = the real AWS endpoint of `region`
    region: str = "us-east-1"
    max_pool_connections: int = Field(default=32, ge=1)
    timeout_s: float = Field(default=10, gt=0)

    @field_validator("endpoint", mode="before")
    @classmethod
    def _blank_is_default(cls, value: Any) -> Any:
        # `${PARITY_DYNAMODB_ENDPOINT:-}` interpolates to "": the real AWS endpoint.
        return None if isinstance(value, str) and not value.strip() else value


class HttpConfig(_Frozen):
    """The daemon's HTTP server. Loopback unless `host` says otherwise (a container that Prometheus
    scrapes from another container needs 0.0.0.0). With `bearer_token`, /metrics, /readyz, /status
    and admin routes need `Authorization: Bearer <token>`; /healthz (liveness) stays open. With
    both TLS files it serves HTTPS only."""

    host: str = "127.0.0.1"
    # 18108: the exporter range 9100-9999 of Prometheus' default port allocations is fully
    # allocated (9108, parity's old default, is graphite_exporter's); 18108 is outside it, outside
    # the Linux ephemeral range (32768-60999) and not in /etc/services. See docs/deploy.md.
    port: int = Field(default=18108, ge=0, le=65535)
    bearer_token: SecretStr | None = None
    # A client that has not sent its request (or read the answer) within this is disconnected, so
    # a slow or stalled client holds a server thread for at most this long.
    request_timeout_s: float = Field(default=10, gt=0, le=300)
    tls_cert_file: str | None = None  # PEM certificate (chain)
    tls_key_file: str | None = None  # PEM private key

    @field_validator("bearer_token", "tls_cert_file", "tls_key_file", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        # `${PARITY_HTTP_TOKEN:-}` with the variable unset interpolates to "": no token, no TLS.
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _tls_pair(self) -> HttpConfig:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            missing = "tls_key_file" if self.tls_key_file is None else "tls_cert_file"
            raise _PathError(missing, "TLS needs both tls_cert_file and tls_key_file")
        return self

    @property
    def tls(self) -> bool:
        return self.tls_cert_file is not None


class DaemonConfig(_Frozen):
    state_dir: str = ".parity/state"
    batch_max_events: int = Field(default=2000, ge=1)
    batch_max_wait_ms: int = Field(default=200, ge=1)
    dynamo_concurrency: int = Field(default=8, ge=1, le=256)
    # Writes in flight for tables with `shadow_writes: single` (one request per item, so it takes
    # more in flight than a transaction of 100 to keep DynamoDB busy). At most
    # `dynamodb.max_pool_connections`: see `ParityConfig.shadow_write_width`.
    shadow_write_concurrency: int = Field(default=32, ge=1, le=256)
    recheck_capacity: int = Field(default=100_000, ge=1)
    drift_log: str | None = None  # JSON lines file for confirmed drift (besides the drift topic)
    drift_window_s: float = Field(default=300, gt=0)  # rolling window of the drift ratio
    http: HttpConfig = Field(default_factory=HttpConfig)


class ReconcileClusterConfig(_Frozen):
    """A Dask cluster that runs the reconcile's reads (parity.reconcilers.cluster, docs/reconciler.md)."""

    scheduler: str | None = None  # tcp://host:8786; None: the reconcile runs in this process
    retries: int = Field(default=2, ge=0, le=20)  # re-runs of a task that raised (a lost worker's are free)
    # The global read budget as a share of the table's provisioned read capacity (DescribeTable),
    # when `reconcile.read_rate_limit` does not give it in RCU/s.
    read_capacity_share: float | None = Field(default=None, gt=0, le=1)
    # Digest tasks leave their unit's records on their worker's local disk (≈60 bytes a row), so
    # the drill-down reads them there instead of reading the source again (docs/reconciler.md).
    worker_spill: bool = True

    @field_validator("scheduler", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value


class ReconcileConfig(_Frozen):
    interval_s: float | None = Field(default=None, gt=0)  # periodic runs inside `parity run`; None = off
    jitter_s: float = Field(default=0, ge=0)
    segments: int = Field(default=8, ge=1, le=1_000_000)
    workers: int = Field(default=8, ge=1, le=256)
    buckets: int = Field(default=1024, ge=1, le=1 << 20)
    page_limit: int = Field(default=1000, ge=1, le=10_000)
    read_rate_limit: float | None = Field(default=None, gt=0)  # RCU per second
    consistent_read: bool = False
    grace_period_s: float = Field(default=5, ge=0)
    report_dir: str = ".parity/reports"
    # Every statement of reconcile and repair (each FETCH of a partition's cursor, each lookup) is
    # cancelled by Postgres after this long, so a lock or a stuck server cannot hold a run forever.
    statement_timeout_s: float = Field(default=300, gt=0)
    cluster: ReconcileClusterConfig = Field(default_factory=ReconcileClusterConfig)


class TableMapping(_Frozen):
    source: str  # schema.table
    primary_key: tuple[str, ...]
    target: str
    mode: Mode = "verify"
    # The Kafka topic of the table's events; default `<kafka.topic_prefix>.<schema>.<table>`.
    # Several tables may share one topic (a router): each record is matched by its source.
    topic: str | None = None
    # `envelope`: Debezium's default change event; `flattened`: ExtractNewRecordState output,
    # described by `flattened` (docs/debezium.md).
    event_format: Literal["envelope", "flattened"] = "envelope"
    flattened: FlattenedEvents | None = None
    shadow_table: str | None = None  # shadow mode writes here instead of `target`
    keys: dict[str, str]
    indexes: dict[str, str] = Field(default_factory=dict)
    constants: dict[str, str | int | bool] = Field(default_factory=dict)
    columns: dict[str, ColumnRule]
    ignore_attributes: tuple[str, ...] = ()
    version_attribute: str = "_parity_version"  # shadow writes: the event's WAL position
    # Verify mode: a column that grows with every change (updated_at, a version counter). When the
    # target's value of it is older than the expected one, the mismatch kind is `stale_in_target`.
    freshness_column: str | None = None
    grace_period_s: float = Field(default=30, ge=0)
    recheck_schedule_s: tuple[float, ...] = (1, 2, 5, 15, 30)
    # A delete verified as absent may still be undone by the application's in-flight (late) write
    # of the row's create or update; re-read deleted keys once more when the grace period ends.
    confirm_deletes: bool = True
    snapshot_policy: Literal["verify", "skip", "recheck"] = "verify"
    snapshot_grace_period_s: float = Field(default=300, ge=0)
    schema_drift: Literal["ignore", "compare"] = "ignore"
    truncate: Literal["ignore", "apply"] = "ignore"
    write_rate_limit: float | None = Field(default=None, gt=0)  # shadow writes per second
    # Shadow writes grouped in conditional TransactWriteItems of up to 100 (fewer round trips,
    # but DynamoDB bills a transactional write as two), or one conditional UpdateItem each
    # (half the WCU, six to ten times the client CPU per write; `daemon.shadow_write_concurrency`
    # of them in flight). When to choose which: docs/deploy.md, section 5.
    shadow_writes: Literal["transactions", "single"] = "transactions"

    @property
    def skips_snapshot(self) -> bool:
        """Snapshot rows of this table are counted skipped, never mapped or compared."""
        return self.mode == "verify" and self.snapshot_policy == "skip"

    @field_validator("columns", mode="before")
    @classmethod
    def _empty_rules(cls, value: Any) -> Any:
        # `column:` with nothing after it in YAML is None: the default rule.
        if isinstance(value, dict):
            return {k: ({} if v is None else v) for k, v in value.items()}
        return value

    @field_validator("source")
    @classmethod
    def _qualified(cls, value: str) -> str:
        parts = value.split(".")
        if len(parts) != 2 or not all(parts):
            raise ValueError(f"must be schema.table, got {value!r}")
        return value

    @field_validator("recheck_schedule_s")
    @classmethod
    def _increasing(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value or any(v <= 0 for v in value) or list(value) != sorted(value):
            raise ValueError("must be a non-empty increasing list of positive seconds")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> TableMapping:
        _check_mapping(self)
        return self

    @property
    def schema(self) -> str:  # type: ignore[override]  # shadows pydantic's deprecated schema()
        return self.source.split(".")[0]

    @property
    def table(self) -> str:
        return self.source.split(".")[1]

    @property
    def partition_key(self) -> str:
        return next(iter(self.keys))

    @property
    def sort_key(self) -> str | None:
        names = list(self.keys)
        return names[1] if len(names) > 1 else None

    @property
    def write_table(self) -> str:
        return self.shadow_table if self.mode == "shadow" and self.shadow_table else self.target

    def rule(self, column: str) -> ColumnRule:
        return self.columns.get(column) or _DEFAULT_RULE


_DEFAULT_RULE = ColumnRule()


class _PathError(ValueError):
    """A validation error inside a model, with the sub-path of the offending field."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.sub_path = path


def template_fields(template: str) -> list[tuple[str, str]]:
    """(column, format spec) of each `{column:spec}` field of a key template."""
    fields: list[tuple[str, str]] = []
    for _literal, field, spec, conversion in string.Formatter().parse(template):
        if field is None:
            continue
        if field == "" or conversion:
            raise ValueError(f"template {template!r}: fields must be named columns, like {{ban}}")
        fields.append((field, spec or ""))
    return fields


def _check_mapping(m: TableMapping) -> None:
    if not m.primary_key:
        raise _PathError(
            "primary_key",
            f"table {m.source} has no primary key: Debezium cannot emit its updates and deletes "
            "without one (or REPLICA IDENTITY FULL); add a primary key",
        )
    for col in m.primary_key:
        if col not in m.columns:
            raise _PathError("primary_key", f"unknown column {col!r}")
    if not 1 <= len(m.keys) <= 2:
        raise _PathError("keys", "needs a partition key and at most one sort key")
    for group in ("keys", "indexes"):
        for attr, template in getattr(m, group).items():
            try:
                fields = template_fields(template)
            except ValueError as exc:
                raise _PathError(f"{group}.{attr}", str(exc)) from exc
            if group == "keys" and not fields:
                raise _PathError(f"{group}.{attr}", "a key template must use at least one column")
            for col, _spec in fields:
                if col not in m.columns:
                    raise _PathError(f"{group}.{attr}", f"unknown column {col!r}")
    _check_event_format(m)
    if m.mode == "reverse":
        _check_reverse(m)
    if m.truncate == "apply" and m.mode != "shadow":
        raise _PathError("truncate", "'apply' deletes target items: only for tables in shadow mode")
    if m.freshness_column is not None and m.freshness_column not in m.columns:
        raise _PathError("freshness_column", f"unknown column {m.freshness_column!r}")
    key_columns = {c for t in m.keys.values() for c, _ in template_fields(t)}
    missing = [c for c in m.primary_key if c not in key_columns]
    if missing:
        raise _PathError(
            "keys",
            f"the key templates must use every primary-key column, missing {missing}: "
            "otherwise two rows could map to one item",
        )
    attrs: dict[str, str] = {}
    for col, rule in m.columns.items():
        if rule.exclude:
            continue
        name = rule.attribute(col)
        if name in attrs:
            raise _PathError(f"columns.{col}.name", f"attribute {name!r} is also produced by {attrs[name]!r}")
        attrs[name] = col
    for name in [*m.keys, *m.indexes, *m.constants, m.version_attribute]:
        if name in attrs and name not in m.ignore_attributes:
            raise _PathError("columns", f"attribute {name!r} is both a column and a key/constant attribute")


def _check_event_format(m: TableMapping) -> None:
    """Refuse what parity cannot do correctly with flattened events, naming the Debezium setting
    that fixes it (docs/debezium.md)."""
    if m.event_format == "envelope":
        if m.flattened is not None:
            raise _PathError("flattened", "applies to event_format: flattened only")
        return
    flat = m.flattened or FlattenedEvents()
    if flat.deletes == "none" and not flat.accept_lost_deletes:
        raise _PathError(
            "flattened.delete_handling",
            "delete handling 'drop' loses every delete: verify cannot see a deleted row's leftover item, and a "
            "row deleted before its create is verified reads as missing_in_target drift. Set "
            "transforms.unwrap.delete.tombstone.handling.mode=rewrite (or tombstone), or acknowledge it with "
            "flattened.accept_lost_deletes: true and find deletes by reconcile",
        )
    if flat.accept_lost_deletes and flat.deletes != "none":
        raise _PathError("flattened.accept_lost_deletes", "applies to delete_handling: drop only")
    if m.mode == "shadow":
        if flat.field_name("lsn") is None:
            raise _PathError(
                "flattened.add_fields",
                "shadow mode writes each change conditioned on its WAL position, and flattened events carry "
                "none: add `lsn` to transforms.unwrap.add.fields (and to flattened.add_fields)",
            )
        if flat.deletes != "rewrite":
            raise _PathError(
                "flattened.delete_handling",
                f"shadow mode with delete handling {flat.delete_handling!r} cannot apply deletes in WAL order "
                "(a tombstone carries no LSN; `drop` loses deletes): set "
                "transforms.unwrap.delete.tombstone.handling.mode=rewrite (and flattened.delete_handling: rewrite)",
            )
        if m.truncate == "apply":
            raise _PathError("truncate", "flattened events carry no TRUNCATE: use event_format: envelope to apply it")
    if m.snapshot_policy != "verify" and flat.field_name("op") is None:
        raise _PathError(
            "snapshot_policy",
            f"{m.snapshot_policy!r} needs to tell snapshot rows from changes: add `op` to "
            "transforms.unwrap.add.fields (and to flattened.add_fields)",
        )
# Settings that describe writing to DynamoDB or reading Debezium events: meaningless for a table
# whose DynamoDB Stream is checked against Postgres (mode reverse), so refused rather than ignored.
_NOT_REVERSE: dict[str, str] = {
    "shadow_table": "shadow mode writes to it",
    "write_rate_limit": "it paces shadow-mode writes",
    "shadow_writes": "it chooses how shadow mode writes",
    "truncate": "a TRUNCATE is a Debezium event",
    "snapshot_policy": "snapshot rows are Debezium events",
    "snapshot_grace_period_s": "snapshot rows are Debezium events",
    "schema_drift": "schema drift is read from Debezium events",
    "topic": "it names a Debezium topic",
    "event_format": "it describes Debezium events",
    "flattened": "it describes Debezium events",
}


def _check_reverse(m: TableMapping) -> None:
    # Compared with the default, not "was it set": `defaults:` may set them for every table.
    for name, why in _NOT_REVERSE.items():
        if getattr(m, name) != TableMapping.model_fields[name].default:
            raise _PathError(
                name,
                f"does not apply to mode reverse ({why}; a reverse table reads DynamoDB's Stream and "
                "checks Postgres): remove it",
            )


class StreamsConfig(_Frozen):
    """Reading the target tables' DynamoDB Streams in the reverse direction (after cutover):
    parity.adapters.streams. Each table's stream must be enabled (NEW_AND_OLD_IMAGES or NEW_IMAGE)."""

    # DynamoDB Local serves streams on its own endpoint; None: `dynamodb.endpoint` when that is set,
    # else the region's DynamoDB Streams endpoint on AWS.
    endpoint: str | None = None
    # Shard leases, one item per shard, in this table (created on-demand if missing). None: no
    # leases, for exactly one replica, which then reads every shard.
    lease_table: str | None = Field(default="parity-stream-leases", min_length=3, max_length=255)
    lease_duration_s: float = Field(default=20, ge=2, le=600)
    # This replica's name in the lease table. Set it to something stable per replica (the pod
    # name): a restarted replica then takes its own leases back at once instead of after they
    # expire. None: a random id per process.
    owner_id: str | None = Field(default=None, min_length=1, max_length=200)
    # Where a shard with no checkpoint starts: its oldest record (up to 24 h back), or new records
    # only (LATEST: the stream's current open shards, from now; used only before any checkpoint).
    start_position: Literal["TRIM_HORIZON", "LATEST"] = "TRIM_HORIZON"
    describe_interval_s: float = Field(default=10, gt=0, le=3600)  # how often new shards are looked for


class ParityConfig(_Frozen):
    postgres: PostgresConfig
    kafka: KafkaConfig
    dynamodb: DynamoConfig = Field(default_factory=DynamoConfig)
    daemon: DaemonConfig = Field(default_factory=DaemonConfig)
    reconcile: ReconcileConfig = Field(default_factory=ReconcileConfig)
    streams: StreamsConfig = Field(default_factory=StreamsConfig)
    # Applied under every table's own settings (a table's value wins).
    defaults: dict[str, Any] = Field(default_factory=dict)
    tables: Annotated[tuple[TableMapping, ...], Field(min_length=1)]

    @model_validator(mode="before")
    @classmethod
    def _apply_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        defaults = data.get("defaults") or {}
        tables = data.get("tables")
        if isinstance(defaults, dict) and isinstance(tables, list):
            data = {**data, "tables": [{**defaults, **t} if isinstance(t, dict) else t for t in tables]}
        return data

    @model_validator(mode="after")
    def _unique_sources(self) -> ParityConfig:
        seen: dict[str, int] = {}
        for i, t in enumerate(self.tables):
            if t.source in seen:
                raise _PathError(f"tables[{i}].source", f"{t.source} is already mapped by tables[{seen[t.source]}]")
            seen[t.source] = i
        formats: dict[str, tuple[int, str]] = {}
        for i, t in enumerate(self.tables):
            topic = t.topic or self.kafka.topic_for(t.source)
            first = formats.setdefault(topic, (i, t.event_format))
            if first[1] != t.event_format:
                raise _PathError(
                    f"tables[{i}].event_format",
                    f"topic {topic} also carries tables[{first[0]}] as {first[1]!r}: one topic has one event format",
                )
        by_target: dict[str, list[TableMapping]] = {}
        for t in self.tables:
            by_target.setdefault(t.target, []).append(t)
        for target, group in by_target.items():
            key_names = {tuple(t.keys) for t in group}
            if len(key_names) > 1:
                i = self.tables.index(group[-1])
                raise _PathError(
                    f"tables[{i}].keys",
                    f"tables sharing DynamoDB table {target} must use the same key attributes, got {sorted(key_names)}",
                )
        return self

    @model_validator(mode="after")
    def _shadow_writes_fit_the_pool(self) -> ParityConfig:
        width, pool = self.daemon.shadow_write_concurrency, self.dynamodb.max_pool_connections
        if "shadow_write_concurrency" in self.daemon.model_fields_set and width > pool:
            # More threads than pooled connections: botocore opens a connection per extra request
            # and throws it away afterwards, which costs more than the extra concurrency gains.
            raise _PathError(
                "daemon.shadow_write_concurrency",
                f"{width} is above dynamodb.max_pool_connections ({pool}): raise "
                "dynamodb.max_pool_connections or lower daemon.shadow_write_concurrency",
            )
        return self

    @property
    def shadow_write_width(self) -> int:
        """Single shadow writes in flight: `daemon.shadow_write_concurrency`, capped to
        `dynamodb.max_pool_connections` when only the pool was set (an explicit value above the
        pool is a config error)."""
        return min(self.daemon.shadow_write_concurrency, self.dynamodb.max_pool_connections)

    def table(self, source: str) -> TableMapping:
        for t in self.tables:
            if t.source == source:
                return t
        raise KeyError(source)

    def topic_of(self, table: TableMapping) -> str:
        """The topic `table`'s events arrive on (its `topic`, else Debezium's default name)."""
        return table.topic or self.kafka.topic_for(table.source)

    def table_for_topic(self, topic: str) -> TableMapping | None:
        """The table whose own topic is `topic`: the one table configured on it, or the table its
        default name designates. None for a topic shared by several tables or not configured."""
        on_topic = [t for t in self.tables if self.topic_of(t) == topic]
        if len(on_topic) == 1:
            return on_topic[0]
        prefix = self.kafka.topic_prefix + "."
        if not topic.startswith(prefix):
            return None
        source = topic[len(prefix):]
        for t in self.tables:
            if t.source == source:
                return t
        return None

    def table_for_source(self, source: str) -> TableMapping | None:
        for t in self.tables:
            if t.source == source:
                return t
        return None

    def topics(self) -> list[str]:
        """What the consumer subscribes to: every table's topic, then `kafka.topic_pattern` as a
        regex subscription (librdkafka's `^` form)."""
        topics = list(dict.fromkeys(self.topic_of(t) for t in self.tables))
        if self.kafka.topic_pattern is not None:
            pattern = self.kafka.topic_pattern
            # librdkafka's own regex engine has no (?:...) groups.
            topics.append(pattern if pattern.startswith("^") else f"^({pattern})$")
        return topics
