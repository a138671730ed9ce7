"""The technician password that guards the diagnostics page.

Only a slow hash is stored (stdlib scrypt, random salt, n=2**15, r=8, p=1: about 32 MiB and tens
of milliseconds per guess, so a stolen file is costly to brute-force), never the password. The
stored form is self-describing, `scrypt$n$r$p$salt_b64$hash_b64`, so the parameters can be raised
later without breaking passwords already set.
"""

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

MIN_PASSWORD_LENGTH = 10
PASSWORD_FILE = "technician.password"

_SCHEME = "scrypt"
_N = 2**15
_R = 8
_P = 1
_SALT_BYTES = 16
_KEY_BYTES = 32
# scrypt needs 128 * n * r bytes; the default 32 MiB cap is exactly that, so leave headroom.
_MAXMEM = 64 * 1024 * 1024


def check_password_rule(password: str) -> None:
    """Refuse passwords too short to resist guessing on a LAN; the message says the rule."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(
            f"technician password must be at least {MIN_PASSWORD_LENGTH} characters "
            f"(got {len(password)})"
        )


def hash_password(password: str) -> str:
    """Hash a password with scrypt and a fresh random salt, after checking the length rule."""
    check_password_rule(password)
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(password, salt, n=_N, r=_R, p=_P)
    return "$".join([_SCHEME, str(_N), str(_R), str(_P), _b64(salt), _b64(digest)])


def verify_password(stored: str, password: str) -> bool:
    """True when `password` matches `stored`; compares in constant time, False on a bad record."""
    try:
        scheme, n, r, p, salt_b64, digest_b64 = stored.strip().split("$")
        if scheme != _SCHEME:
            return False
        salt = base64.b64decode(salt_b64, validate=True)
        expected = base64.b64decode(digest_b64, validate=True)
        actual = _scrypt(password, salt, n=int(n), r=int(r), p=int(p), length=len(expected))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def store_password(data_dir: Path, password: str) -> Path:
    """Hash the password and write it to `data_dir/technician.password` with mode 0600."""
    record = hash_password(password)
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / PASSWORD_FILE
    temporary = path.with_name(f".{PASSWORD_FILE}.tmp")
    temporary.unlink(missing_ok=True)
    # O_EXCL with 0600 so the hash is never readable by others, not even for a moment.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(record + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    return path


def load_password_hash(data_dir: Path) -> str | None:
    """The stored hash, or None when no technician password has been set yet."""
    try:
        record = (data_dir / PASSWORD_FILE).read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    return record or None


def _scrypt(
    password: str, salt: bytes, *, n: int, r: int, p: int, length: int = _KEY_BYTES
) -> bytes:
    """scrypt with a memory cap that fits the chosen parameters."""
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=length
    )


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
