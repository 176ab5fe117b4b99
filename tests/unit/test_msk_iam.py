"""Amazon MSK IAM authentication: `kafka.auth: {type: msk_iam, region: ...}` is validated once, and
every Kafka client parity builds for a deployment (the consumer, the drift / dead-letter producer,
the doctor's admin and consumer clients) gets SASL_SSL + OAUTHBEARER and a callback that returns the
signer's token with its expiry in seconds. The signer is replaced at its boundary
(`MSKAuthTokenProvider.generate_auth_token`); nothing here talks to AWS or to a broker."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from parity.config_loader import parse_config
from parity.core.config import ParityConfig
from parity.core.errors import ConfigError

pytestmark = pytest.mark.unit

TOKEN = "aHR0cHM6Ly9rYWZrYS51cy1lYXN0LTEuYW1hem9uYXdzLmNvbS8_QWN0aW9uPWthZmthLWNsdXN0ZXI6Q29ubmVjdA"
EXPIRY_MS = 1_767_225_600_000  # the signer answers in milliseconds since the epoch


def config(kafka: dict[str, Any]) -> ParityConfig:
    return parse_config({"postgres": {"dsn": "postgresql://x@h/db"},
                         "kafka": {"bootstrap_servers": "b-1.msk.example:9098", "topic_prefix": "cdc", **kafka},
                         "tables": [{"source": "public.items", "primary_key": ["id"], "target": "Items",
                                     "keys": {"PK": "ITEM#{id}"}, "columns": {"id": {}}}]}, env={})


def _where(err: ConfigError) -> str:
    """The error without the file name (here "<config>"): path and message."""
    return str(err).removeprefix("<config>: ")


MSK = {"auth": {"type": "msk_iam", "region": "eu-west-1"}}


@pytest.fixture
def signer(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The signer library's entry point, replaced: records the regions it was asked to sign for."""
    from aws_msk_iam_sasl_signer import MSKAuthTokenProvider

    calls: list[str] = []

    def generate_auth_token(region: str, aws_debug_creds: bool = False) -> tuple[str, int]:
        calls.append(region)
        return TOKEN, EXPIRY_MS

    monkeypatch.setattr(MSKAuthTokenProvider, "generate_auth_token", generate_auth_token)
    return calls


# --- configuration ------------------------------------------------------------------------------------


def test_msk_iam_is_accepted_with_a_region() -> None:
    cfg = config({**MSK, "options": {"ssl.ca.location": "/etc/ssl/certs/ca-certificates.crt"}})
    assert cfg.kafka.auth is not None
    assert cfg.kafka.auth.type == "msk_iam" and cfg.kafka.auth.region == "eu-west-1"


def test_without_auth_there_is_none() -> None:
    assert config({}).kafka.auth is None


@pytest.mark.parametrize("option", ["sasl.username", "sasl.password", "sasl.mechanisms", "sasl.mechanism",
                                    "security.protocol", "sasl.oauthbearer.config"])
def test_msk_iam_refuses_sasl_settings_in_options(option: str) -> None:
    with pytest.raises(ConfigError) as err:
        config({**MSK, "options": {option: "x"}})
    assert _where(err.value).startswith(f"kafka.options: {option}: set by kafka.auth (type msk_iam)")


@pytest.mark.parametrize(("auth", "where"), [
    ({"type": "msk_iam"}, "kafka.auth.msk_iam.region: required"),
    ({"type": "msk_iam", "region": ""}, "kafka.auth.msk_iam.region: "),
    ({"type": "scram", "region": "eu-west-1"}, "kafka.auth: "),
    ({"type": "msk_iam", "region": "eu-west-1", "role": "x"}, "kafka.auth.msk_iam.role: unknown key"),
])
def test_msk_iam_settings_are_checked(auth: dict[str, Any], where: str) -> None:
    with pytest.raises(ConfigError) as err:
        config({"auth": auth})
    assert _where(err.value).startswith(where), str(err.value)


# --- the client configuration it produces ---------------------------------------------------------------


def test_the_options_carry_sasl_ssl_oauthbearer_and_a_callback(signer: list[str]) -> None:
    from parity.kafka_auth import client_options

    opts = client_options(config({**MSK, "options": {"ssl.ca.location": "/ca.pem"}}).kafka)
    assert opts["security.protocol"] == "SASL_SSL"
    assert opts["sasl.mechanisms"] == "OAUTHBEARER"
    assert opts["ssl.ca.location"] == "/ca.pem"  # the other options pass through
    assert set(opts) == {"security.protocol", "sasl.mechanisms", "ssl.ca.location", "oauth_cb"}
    assert signer == []  # nothing is signed before librdkafka asks
    # librdkafka passes sasl.oauthbearer.config (None when unset) and wants (token, expiry in seconds)
    assert opts["oauth_cb"](None) == (TOKEN, EXPIRY_MS / 1000)
    assert signer == ["eu-west-1"]
    assert opts["oauth_cb"]("ignored") == (TOKEN, EXPIRY_MS / 1000)  # a refresh signs again
    assert signer == ["eu-west-1", "eu-west-1"]


def test_without_auth_the_options_are_passed_unchanged() -> None:
    from parity.kafka_auth import client_options

    options = {"security.protocol": "SASL_SSL", "sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": "parity",
               "sasl.password": "pw"}
    assert client_options(config({"options": options}).kafka) == options


def test_a_missing_signer_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from parity.kafka_auth import client_options

    monkeypatch.setitem(sys.modules, "aws_msk_iam_sasl_signer", None)  # import fails as if not installed
    with pytest.raises(ConfigError, match=r"kafka\.auth.*parity\[msk\]"):
        client_options(config(MSK).kafka)


def test_the_consumer_gets_the_msk_iam_settings(signer: list[str]) -> None:
    from parity.adapters.kafka import KafkaSource
    from parity.daemon.wiring import kafka_source

    seen: list[dict[str, Any]] = []

    class FakeConsumer:
        def __init__(self, conf: dict[str, Any]) -> None:
            seen.append(conf)

        def subscribe(self, *args: Any, **kwargs: Any) -> None:
            pass

    source = kafka_source(config(MSK), consumer_factory=FakeConsumer)
    assert isinstance(source, KafkaSource)
    (conf,) = seen
    assert conf["security.protocol"] == "SASL_SSL" and conf["sasl.mechanisms"] == "OAUTHBEARER"
    assert conf["group.id"] == "parity" and conf["bootstrap.servers"] == "b-1.msk.example:9098"
    assert conf["oauth_cb"](None) == (TOKEN, EXPIRY_MS / 1000)


def test_the_drift_and_dead_letter_producer_gets_the_msk_iam_settings(
        signer: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import confluent_kafka

    from parity.adapters.clients import kafka_producer

    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(confluent_kafka, "Producer", lambda conf: seen.append(conf) or object())
    kafka_producer(config(MSK).kafka)
    (conf,) = seen
    assert conf["security.protocol"] == "SASL_SSL" and conf["sasl.mechanisms"] == "OAUTHBEARER"
    assert conf["enable.idempotence"] is True and conf["acks"] == "all"
    assert conf["oauth_cb"](None) == (TOKEN, EXPIRY_MS / 1000)


def test_the_doctor_clients_get_the_msk_iam_settings(signer: list[str]) -> None:
    from parity.doctor import _kafka_conf

    conf = _kafka_conf(config(MSK))
    assert conf["security.protocol"] == "SASL_SSL" and conf["sasl.mechanisms"] == "OAUTHBEARER"
    assert conf["oauth_cb"](None) == (TOKEN, EXPIRY_MS / 1000)
