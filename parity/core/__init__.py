"""The core: parity's domain logic as pure functions and values, with no I/O.

What lives here: decoding Debezium events (`events`, `types`), mapping rows to items (`mapping`),
canonical values and comparison (`values`, `normalize`, `compare`), digests for reconciles, the
commit ledger, rechecks, rate limiting, the drift window, the configuration model and the errors.
What does not: sockets, files, clocks, threads or clients. The caller passes `now` and the data in;
everything that talks to Postgres, Kafka or DynamoDB is in `parity.adapters`. Modules here import
only the standard library, orjson, pydantic and each other.
"""
