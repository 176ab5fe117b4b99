"""The real local stack for the demo, tests and benchmarks: a private PostgreSQL cluster, a tansu
Kafka broker, DynamoDB Local, the Debezium bridge, Prometheus and Alertmanager, each on 127.0.0.1
and a free port, with its PID and log in a state directory. See stack.py for `parity dev`."""

from parity.devstack.debezium import BridgeProcess, start_bridge
from parity.devstack.dynamodb import DynamoService, start_dynamodb
from parity.devstack.kafka import KafkaService, start_kafka
from parity.devstack.postgres import PostgresService, start_postgres
from parity.devstack.prereqs import MissingPrerequisite
from parity.devstack.process import ServiceError, free_port
from parity.devstack.prometheus import (
    AlertmanagerService,
    PrometheusService,
    start_alertmanager,
    start_prometheus,
)
from parity.devstack.stack import Stack

__all__ = [
    "AlertmanagerService",
    "BridgeProcess",
    "DynamoService",
    "KafkaService",
    "MissingPrerequisite",
    "PostgresService",
    "PrometheusService",
    "ServiceError",
    "Stack",
    "free_port",
    "start_alertmanager",
    "start_bridge",
    "start_dynamodb",
    "start_kafka",
    "start_postgres",
    "start_prometheus",
]
