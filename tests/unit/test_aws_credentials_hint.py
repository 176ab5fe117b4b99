"""Missing AWS credentials: one line that names the fix, local emulator or real AWS."""

from __future__ import annotations

import pytest
from botocore.exceptions import NoCredentialsError

from parity.aws_credentials import find_no_credentials, missing_credentials_message

pytestmark = pytest.mark.unit


def test_a_local_endpoint_gets_dummy_credentials_and_parity_dev_env() -> None:
    line = missing_credentials_message("http://127.0.0.1:8000")
    assert "\n" not in line
    assert "export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_DEFAULT_REGION=us-east-1" in line
    assert 'eval "$(parity dev env)"' in line
    assert "IRSA" not in line


def test_an_emulator_on_another_host_is_local_too() -> None:
    assert "AWS_ACCESS_KEY_ID=local" in missing_credentials_message("http://dynamodb-local:8000")


@pytest.mark.parametrize("endpoint", [None, "https://dynamodb.eu-west-1.amazonaws.com"])
def test_real_aws_names_the_credential_sources_not_dummy_keys(endpoint: str | None) -> None:
    line = missing_credentials_message(endpoint, region="eu-west-1")
    assert "\n" not in line
    assert "IRSA" in line and "AWS_PROFILE" in line and "eu-west-1" in line
    assert "AWS_ACCESS_KEY_ID=local" not in line


def test_found_through_the_cause_chain_of_a_wrapping_error() -> None:
    root = NoCredentialsError()
    try:
        try:
            raise root
        except NoCredentialsError as exc:
            raise RuntimeError("batch_get: NoCredentialsError") from exc
    except RuntimeError as wrapped:
        assert find_no_credentials(wrapped) is root
    assert find_no_credentials(ValueError("x")) is None


def test_the_entry_point_turns_an_escaped_no_credentials_error_into_one_line(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import parity.cli

    def boom() -> None:
        raise RuntimeError("wrapped") from NoCredentialsError()

    monkeypatch.setattr(parity.cli, "app", boom)
    with pytest.raises(SystemExit) as exited:
        parity.cli.main()
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and 'eval "$(parity dev env)"' in err and "IRSA" in err


def test_the_entry_point_lets_other_errors_through(monkeypatch: pytest.MonkeyPatch) -> None:
    import parity.cli

    def boom() -> None:
        raise KeyError("not about credentials")

    monkeypatch.setattr(parity.cli, "app", boom)
    with pytest.raises(KeyError):
        parity.cli.main()
