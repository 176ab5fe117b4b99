"""Several real services together (Postgres, Kafka, Debezium, DynamoDB Local), and the harnesses
that deploy an example on them and wait for the daemon to settle."""
