"""The gateway's Ed25519 key pair: made locally, private key kept mode 0600, never sent anywhere."""

import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.errors import ConfigError
from shared.signing import load_private_key, private_key_pem


def create_private_key(path: Path) -> Ed25519PrivateKey:
    """Generate a key and write it with mode 0600; refuses to overwrite an existing key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise ConfigError(f"{path}: a gateway key already exists; refusing to replace it") from exc
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(private_key_pem(key))
        handle.flush()
        os.fsync(handle.fileno())
    return key


def load_gateway_key(path: Path) -> Ed25519PrivateKey:
    """Read the gateway key, refusing one that other users can read."""
    try:
        mode = path.stat().st_mode
        pem = path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no gateway key; run `tollgate-edge keygen`") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read gateway key: {exc.strerror}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{path}: gateway key is readable by others (mode {mode & 0o777:o}); chmod 600 it"
        )
    try:
        return load_private_key(pem)
    except ValueError as exc:
        raise ConfigError(f"{path}: not an Ed25519 private key: {exc}") from exc


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The gateway key, made on first use."""
    return create_private_key(path) if not path.exists() else load_gateway_key(path)
