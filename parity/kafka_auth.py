"""The authentication settings of every Kafka client parity builds for a deployment: the consumer,
the drift / dead-letter producer and the doctor's clients all take `client_options(config.kafka)`.

Without `kafka.auth` that is `kafka.options` unchanged (SCRAM, mutual TLS ... as librdkafka strings).
With `kafka.auth: {type: msk_iam, region: ...}` it adds SASL_SSL + OAUTHBEARER and an `oauth_cb`:
librdkafka calls it for a token before the first connection and again before the token expires (on
its background thread in confluent-kafka 2.16, no poll() needed), and the AWS MSK signer
(`aws-msk-iam-sasl-signer-python`, extra `parity[msk]`) signs one from the process's AWS credentials
(IRSA / EKS Pod Identity, ECS task role, instance profile). No Kafka password exists anywhere."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from parity.core.config import KafkaConfig
from parity.core.errors import ConfigError

# What librdkafka's oauth_cb returns: the token and its expiry in seconds since the epoch.
OAuthToken = tuple[str, float]


def msk_iam_oauth_cb(region: str, sign: Callable[[str], tuple[str, int]]) -> Callable[[Any], OAuthToken]:
    """The callback librdkafka calls (with `sasl.oauthbearer.config`, unused) for a fresh token."""

    def oauth_cb(_oauthbearer_config: Any) -> OAuthToken:
        token, expiry_ms = sign(region)  # the signer answers in milliseconds
        return token, expiry_ms / 1000

    return oauth_cb


def _msk_signer() -> Callable[[str], tuple[str, int]]:
    try:
        from aws_msk_iam_sasl_signer import MSKAuthTokenProvider
    except ImportError:
        raise ConfigError("kafka.auth: type msk_iam needs the MSK IAM signer: pip install 'parity[msk]' "
                          "(the container image includes it)") from None

    def sign(region: str) -> tuple[str, int]:
        # Looked up at each call, so the module's function is the one boundary (tests replace it).
        token, expiry_ms = MSKAuthTokenProvider.generate_auth_token(region)
        return str(token), int(expiry_ms)

    return sign


def client_options(cfg: KafkaConfig) -> dict[str, Any]:
    """`kafka.options` plus what `kafka.auth` sets; the configuration refused any overlap already."""
    options: dict[str, Any] = dict(cfg.options)
    if cfg.auth is not None:  # the only type so far: msk_iam
        options.update({
            "security.protocol": "SASL_SSL",
            "sasl.mechanisms": "OAUTHBEARER",
            "oauth_cb": msk_iam_oauth_cb(cfg.auth.region, _msk_signer()),
        })
    return options
