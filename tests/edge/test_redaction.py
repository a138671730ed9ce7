"""One rule for which config keys are secret, shared by both support bundles."""

import pytest

from edge.redaction import is_secret_key


@pytest.mark.parametrize(
    "key", ["password", "mqtt_password", "Client_Secret", "api_key", "token", "bearerToken"]
)
def test_secret_names_are_secret(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key", ["password_file", "key_file", "secret_path", "token_dir", "username", "cloud_url"]
)
def test_where_a_secret_lives_and_plain_settings_are_not(key: str) -> None:
    assert not is_secret_key(key)
