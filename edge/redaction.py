"""Which config keys hold secrets: one rule for every support bundle.

A key is secret when its name contains a secret word (password, secret, token, api key,
credential), so a new secret field is redacted without anyone remembering to list it. Keys that
name where a secret lives (`*_file`, `*_path`, `*_dir`) are not: support needs the path, and the
path is no secret.
"""

SECRET_WORDS = ("password", "passwd", "secret", "token", "api_key", "apikey", "credential")
_LOCATION_SUFFIXES = ("_file", "_path", "_dir")


def is_secret_key(key: str) -> bool:
    """Whether the value of config key `key` must never leave the gateway."""
    lowered = key.lower()
    if lowered.endswith(_LOCATION_SUFFIXES):
        return False
    return any(word in lowered for word in SECRET_WORDS)
