"""Adapters: everything that talks to a real service, each behind a narrow interface.

- `dynamodb`  DynamoStore: batched consistent reads and conditional writes (the daemon, reconcile,
              repair and bench all use it); wire decoding with orjson on the read path.
- `kafka`     KafkaSource: the change-topic consumer (poll, commit, lag, rewind).
- `sinks`     KafkaTopicSink (dead-letter and drift topics) and JsonLinesFile (drift.jsonl).
- `state`     StateStore: the daemon's SQLite state (outcome counts, drift lifecycle, outbox, facts).
- `clients`   building the boto3, Kafka and Postgres clients from the configuration.

Pure rules never live here (they are in `parity.core`); an adapter receives its client, so tests
and benchmarks decide endpoints, retries and pools.
"""
