"""Enrollment and key rotation, from the gateway's side.

`enroll`: the gateway makes its Ed25519 key pair locally (the private key never leaves
`data_dir`, mode 0600), sends only the public key with the single-use code to
`POST /v1/enrollments`, and stores the id the cloud assigns in `data_dir/enrollment.json`.

`rotate_key`: a new key is written to `gateway.key.next` (0600, fsynced), the statement
`{gateway_id, new_public_key, issued_at}` is signed canonically with the current key and sent to
`POST /v1/gateways/{id}/keys`. Only after the cloud accepted it is the old key kept as
`gateway.key.previous` (a hard link) and `gateway.key.next` renamed over `gateway.key` (atomic).
At every moment `gateway.key` is a complete key. A crash before the cloud answered leaves the old
key current on both sides; a crash after it leaves `gateway.key.next` behind: the next
`rotate-key` asks the cloud whether the key in `gateway.key.next` is current (a request signed
with it to `GET /v1/gateways/{id}/head`) and, if it is, only finishes the rename (otherwise it
sends the same new key again).
"""

import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.errors import ConfigError, GatewayError
from edge.keys import create_private_key, load_gateway_key, load_or_create_key
from shared.canonical import format_time
from shared.request_signing import signed_request_headers
from shared.signing import key_rotation_statement, public_key_pem, sign

ENROLLMENT_FILE = "enrollment.json"
REQUEST_TIMEOUT = 30.0


class EnrollmentFailed(GatewayError):
    """The cloud refused an enrollment or key rotation, or could not be reached."""


@dataclass(frozen=True)
class EnrollmentRecord:
    """What `data_dir/enrollment.json` holds: who the cloud says this gateway is."""

    gateway_id: str
    site_id: str
    cloud_url: str
    enrolled_at: str


def read_enrollment(data_dir: Path) -> EnrollmentRecord | None:
    """The enrollment stored in `data_dir`, or None if the gateway was never enrolled."""
    path = data_dir / ENROLLMENT_FILE
    try:
        document = orjson.loads(path.read_bytes())
        return EnrollmentRecord(**{name: str(document[name]) for name in _FIELDS})
    except FileNotFoundError:
        return None
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: unreadable enrollment record: {exc}") from exc


_FIELDS = ("gateway_id", "site_id", "cloud_url", "enrolled_at")


def write_enrollment(data_dir: Path, record: EnrollmentRecord) -> Path:
    """Write `enrollment.json` atomically (temp file, fsync, rename)."""
    path = data_dir / ENROLLMENT_FILE
    temporary = path.with_suffix(".json.tmp")
    with temporary.open("wb") as handle:
        handle.write(orjson.dumps(record.__dict__, option=orjson.OPT_INDENT_2))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    _sync_directory(data_dir)
    return path


def enroll(
    *,
    cloud_url: str,
    code: str,
    data_dir: Path,
    key_path: Path,
    transport: httpx.BaseTransport | None = None,
) -> EnrollmentRecord:
    """Enroll with a single-use code: only the public key is sent; the record is stored."""
    existing = read_enrollment(data_dir)
    if existing is not None:
        raise ConfigError(
            f"{data_dir / ENROLLMENT_FILE}: already enrolled as {existing.gateway_id}; "
            "remove the file (and the gateway key) to enroll this gateway anew"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    key = load_or_create_key(key_path)
    body = {
        "code": code,
        "public_key_pem": public_key_pem(key.public_key()),
        "hostname": socket.gethostname(),
    }
    document = _post(cloud_url, "/v1/enrollments", body, transport=transport)
    record = EnrollmentRecord(
        gateway_id=str(document["gateway_id"]),
        site_id=str(document["site_id"]),
        cloud_url=cloud_url.rstrip("/"),
        enrolled_at=str(document["enrolled_at"]),
    )
    write_enrollment(data_dir, record)
    return record


def next_key_path(key_path: Path) -> Path:
    """Where a new key waits until the cloud accepted it."""
    return key_path.with_name(key_path.name + ".next")


def previous_key_path(key_path: Path) -> Path:
    """Where the key before the last rotation is kept."""
    return key_path.with_name(key_path.name + ".previous")


def rotate_key(
    *,
    cloud_url: str,
    gateway_id: str,
    key_path: Path,
    transport: httpx.BaseTransport | None = None,
) -> Ed25519PrivateKey:
    """Rotate the gateway key (see the module docstring for the crash-safety order)."""
    current = load_gateway_key(key_path)
    pending_path = next_key_path(key_path)
    pending = (
        load_gateway_key(pending_path)
        if pending_path.exists()
        else create_private_key(pending_path)
    )
    new_pem = public_key_pem(pending.public_key())
    if not _cloud_holds_key(cloud_url, gateway_id, pending, transport=transport):
        issued_at = format_time(datetime.now(UTC))
        statement = key_rotation_statement(
            gateway_id=gateway_id, new_public_key_pem=new_pem, issued_at=issued_at
        )
        body = {
            "new_public_key_pem": new_pem,
            "issued_at": issued_at,
            "signature": sign(current, statement),
        }
        _post(cloud_url, f"/v1/gateways/{gateway_id}/keys", body, transport=transport)
    _install_key(key_path, pending_path)
    return pending


def _install_key(key_path: Path, pending_path: Path) -> None:
    previous = previous_key_path(key_path)
    previous.unlink(missing_ok=True)
    os.link(key_path, previous)
    os.replace(pending_path, key_path)
    _sync_directory(key_path.parent)


def _cloud_holds_key(
    cloud_url: str,
    gateway_id: str,
    key: Ed25519PrivateKey,
    *,
    transport: httpx.BaseTransport | None,
) -> bool:
    """Whether `key` is the gateway's current key in the cloud: a request signed with it may
    read the chain head (401 when the cloud holds another key)."""
    path = f"/v1/gateways/{gateway_id}/head"
    headers = signed_request_headers(
        key, gateway_id=gateway_id, method="GET", path=path, now=datetime.now(UTC)
    )
    with _client(cloud_url, transport) as client:
        try:
            response = client.get(path, headers=headers)
        except httpx.HTTPError as exc:
            raise EnrollmentFailed(f"cannot reach the collector at {cloud_url}: {exc}") from exc
    if response.status_code == 401:
        return False
    if response.status_code != 200:
        raise EnrollmentFailed(_refusal(response))
    return bool(response.json().get("public_key_pem") == public_key_pem(key.public_key()))


def _post(
    cloud_url: str, path: str, body: dict[str, str], *, transport: httpx.BaseTransport | None
) -> dict[str, object]:
    with _client(cloud_url, transport) as client:
        try:
            response = client.post(path, json=body)
        except httpx.HTTPError as exc:
            raise EnrollmentFailed(f"cannot reach the collector at {cloud_url}: {exc}") from exc
    if response.status_code >= 300:
        raise EnrollmentFailed(_refusal(response))
    document = response.json()
    if not isinstance(document, dict):
        raise EnrollmentFailed(f"collector answered {response.status_code} without a document")
    return document


def _client(cloud_url: str, transport: httpx.BaseTransport | None) -> httpx.Client:
    return httpx.Client(base_url=cloud_url, timeout=REQUEST_TIMEOUT, transport=transport)


def _refusal(response: httpx.Response) -> str:
    """The collector's error code and message, e.g. `enrollment_code_used: ...`."""
    try:
        error = response.json()["error"]
        return f"collector refused ({response.status_code} {error['code']}): {error['message']}"
    except (ValueError, KeyError, TypeError):
        return f"collector answered {response.status_code}: {response.text[:200]}"


def _sync_directory(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
