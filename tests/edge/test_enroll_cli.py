"""`tollgate-edge enroll` / `rotate-key` against a real `tollgate-cloud serve`, on both databases.

The billing side uses the real `tollgate-cloud site add | gateway invite | gateway revoke`; the
gateway side the real `tollgate-edge` commands, and batches go out through the real forwarder.
"""

import asyncio
import base64
import gzip
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import edge.enrollment
from cloud.cli import main as cloud_main
from edge.cli import main as edge_main
from edge.config import ForwarderConfig, load_config
from edge.diagnostics.password import load_password_hash
from edge.enrollment import (
    ENROLLMENT_FILE,
    EnrollmentFailed,
    enroll,
    next_key_path,
    previous_key_path,
    rotate_key,
)
from edge.forwarder import Forwarder
from edge.installer.technician_cli import NO_PASSWORD_NOTICE
from edge.keys import load_gateway_key
from edge.outbox import Outbox
from shared.events import Batch
from shared.signing import private_key_pem, public_key_pem, verify_batch
from tests.support.batches import batch_body, chain_events, draft
from tests.support.waiting import free_port

SITE = "depot-7"
BIN = Path(sys.executable).parent
FAST = ForwarderConfig(batch_max_events=5, retry_initial="10ms", retry_max="20ms")


@dataclass(frozen=True)
class Cloud:
    """A running collector: its URL and its database URL (as users type it)."""

    url: str
    db: str
    reader_key: str


@pytest.fixture
def cloud(db_url: str, tmp_path: Path) -> Iterator[Cloud]:
    """`tollgate-cloud serve` on a migrated database with one site."""
    db = db_url.replace("+aiosqlite", "").replace("+asyncpg", "")
    assert cloud_main(["migrate", "--db", db]) == 0
    assert cloud_main(["site", "add", "--id", SITE, "--name", "Depot 7", "--db", db]) == 0
    reader_key = _issue_viewer_key(db)
    port = free_port()
    with (tmp_path / "collector.log").open("ab") as log:
        process = subprocess.Popen(
            [BIN / "tollgate-cloud", "serve", "--db", db, "--port", str(port)],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process)
        yield Cloud(url=url, db=db, reader_key=reader_key)
    finally:
        process.terminate()
        process.wait(timeout=30)


ROLE_VIEWER = ("--role", "viewer")
JSON = {"Content-Type": "application/json"}


def _issue_viewer_key(db: str) -> str:
    """A viewer key made with the CLI (its secret is the first line it prints)."""
    out = subprocess.run(
        [BIN / "tollgate-cloud", "apikey", "create", "--name", "reader", *ROLE_VIEWER, "--db", db],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return out.splitlines()[0].strip()


def _wait_healthy(url: str, process: "subprocess.Popen[bytes]") -> None:
    for _ in range(300):
        assert process.poll() is None, "collector exited"
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("collector did not become healthy")


def invite(cloud: Cloud, capsys: pytest.CaptureFixture[str]) -> str:
    """`tollgate-cloud gateway invite`: the code is stdout's only line."""
    capsys.readouterr()
    assert (
        cloud_main(["gateway", "invite", "--site", SITE, "--expires", "1h", "--db", cloud.db]) == 0
    )
    out = capsys.readouterr()
    assert "shown only now" in out.err
    return out.out.strip()


def write_config(tmp_path: Path, data_dir: Path, cloud_url: str, *, gateway_id: str = "") -> Path:
    """A site config without devices; with `id` only when given."""
    path = tmp_path / "site.toml"
    line = f'id = "{gateway_id}"\n' if gateway_id else ""
    path.write_text(f'[gateway]\n{line}cloud_url = "{cloud_url}"\ndata_dir = "{data_dir}"\n')
    return path


def enroll_cli(cloud: Cloud, code: str, data_dir: Path) -> int:
    """`tollgate-edge enroll --data-dir`."""
    return edge_main(["enroll", "--cloud", cloud.url, "--code", code, "--data-dir", str(data_dir)])


async def send(config_path: Path, first: int, last: int, *, key_path: Path) -> Forwarder:
    """Append drafts `first..last` to the gateway's outbox and forward them like the agent does."""
    gateway = load_config(config_path).gateway
    key = load_gateway_key(key_path)
    async with (
        Outbox(gateway.outbox_path, gateway_id=gateway.id, budget_bytes=10**8) as outbox,
        httpx.AsyncClient(base_url=gateway.cloud_url) as client,
    ):
        await outbox.append([draft(n) for n in range(first, last + 1)])
        forwarder = Forwarder(
            outbox=outbox,
            client=client,
            gateway_id=gateway.id,
            key=key,
            config=FAST,
            key_path=key_path,
        )
        assert await forwarder.forward_pending() == last - first + 1
        assert await outbox.backlog() == 0
    return forwarder


def gateway_status(cloud: Cloud, gateway_id: str) -> dict[str, object]:
    """GET /v1/gateways/{id}."""
    response = httpx.get(
        f"{cloud.url}/v1/gateways/{gateway_id}",
        headers={"Authorization": f"Bearer {cloud.reader_key}"},
    )
    assert response.status_code == 200, response.text
    document: dict[str, object] = response.json()
    return document


def test_invite_enroll_and_send_as_the_enrolled_gateway(
    cloud: Cloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = invite(cloud, capsys)
    data_dir = tmp_path / "data"

    assert enroll_cli(cloud, code, data_dir) == 0

    record = orjson.loads((data_dir / ENROLLMENT_FILE).read_bytes())
    gateway_id = record["gateway_id"]
    assert gateway_id.startswith(f"gw-{SITE}-") and record["site_id"] == SITE
    assert record["cloud_url"] == cloud.url and record["enrolled_at"]
    assert stat.S_IMODE((data_dir / "gateway.key").stat().st_mode) == 0o600
    assert f"enrolled as gateway {gateway_id}" in capsys.readouterr().out
    config = write_config(tmp_path, data_dir, cloud.url)
    assert load_config(config).gateway.id == gateway_id
    asyncio.run(send(config, 1, 3, key_path=data_dir / "gateway.key"))
    assert gateway_status(cloud, gateway_id)["last_seq"] == 3


def test_used_and_wrong_codes_exit_2_with_the_collectors_reason(
    cloud: Cloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = invite(cloud, capsys)
    assert enroll_cli(cloud, code, tmp_path / "first") == 0
    capsys.readouterr()

    assert enroll_cli(cloud, code, tmp_path / "second") == 2
    used = capsys.readouterr().err
    assert enroll_cli(cloud, "TG-0000-0000-0000-0000", tmp_path / "third") == 2
    wrong = capsys.readouterr().err

    assert "409 enrollment_code_used" in used and "already used" in used
    assert "404 enrollment_code_unknown" in wrong
    assert not (tmp_path / "second" / ENROLLMENT_FILE).exists()
    assert enroll_cli(cloud, code, tmp_path / "first") == 2  # already enrolled: said locally
    assert "already enrolled" in capsys.readouterr().err


def test_the_private_key_never_leaves_the_gateway(
    cloud: Cloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bodies: list[bytes] = []

    class Recording(httpx.BaseTransport):
        def __init__(self, inner: httpx.BaseTransport) -> None:
            self.inner = inner

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            headers = b"".join(name + b"=" + value for name, value in request.headers.raw)
            bodies.append(request.read() + str(request.url).encode() + headers)
            return self.inner.handle_request(request)

    key_path = tmp_path / "data" / "gateway.key"
    with httpx.HTTPTransport() as inner:
        record = enroll(
            cloud_url=cloud.url,
            code=invite(cloud, capsys),
            data_dir=tmp_path / "data",
            key_path=key_path,
            transport=Recording(inner),
        )
        first = load_gateway_key(key_path)
        second = rotate_key(
            cloud_url=cloud.url,
            gateway_id=record.gateway_id,
            key_path=key_path,
            transport=Recording(inner),
        )

    secret_forms = [private_key_pem(key) for key in (first, second)] + [
        key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        for key in (first, second)
    ]
    secret_forms += [base64.b64encode(raw) for raw in secret_forms[2:]] + [
        raw.hex().encode() for raw in secret_forms[2:]
    ]
    assert len(bodies) == 3  # enroll, the cloud's current key, the rotation
    assert public_key_pem(first.public_key()).encode() in bodies[0].replace(b"\\n", b"\n")
    for body in bodies:
        for secret in secret_forms:
            assert secret not in body
            assert secret not in body.replace(b"\\n", b"\n")
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(previous_key_path(key_path).stat().st_mode) == 0o600


def test_rotate_key_retires_the_old_key_and_the_forwarder_picks_up_the_new(
    cloud: Cloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    assert enroll_cli(cloud, invite(cloud, capsys), data_dir) == 0
    config = write_config(tmp_path, data_dir, cloud.url)
    gateway_id = load_config(config).gateway.id
    key_path = data_dir / "gateway.key"
    old_pem = key_path.read_bytes()
    old = load_gateway_key(key_path)
    asyncio.run(send(config, 1, 2, key_path=key_path))

    assert edge_main(["rotate-key", "--config", str(config)]) == 0

    new = load_gateway_key(key_path)
    assert previous_key_path(key_path).read_bytes() == old_pem
    assert not next_key_path(key_path).exists()
    assert gateway_status(cloud, gateway_id)["public_key_pem"] == public_key_pem(new.public_key())
    events = chain_events([draft(n) for n in range(1, 5)], gateway_id=gateway_id)[2:]
    refused = httpx.post(f"{cloud.url}/v1/batches", content=batch_body(events, old), headers=JSON)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "key_retired"
    # The agent's forwarder was made with the old key: it reloads the file and is accepted.
    asyncio.run(send(config, 3, 4, key_path=key_path))
    assert gateway_status(cloud, gateway_id)["last_seq"] == 4


def test_a_crash_after_the_cloud_accepted_the_new_key_is_finished_by_the_next_run(
    cloud: Cloud,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data_dir = tmp_path / "data"
    assert enroll_cli(cloud, invite(cloud, capsys), data_dir) == 0
    config = write_config(tmp_path, data_dir, cloud.url)
    gateway_id = load_config(config).gateway.id
    key_path = data_dir / "gateway.key"
    old_pem = key_path.read_bytes()

    def power_cut(*_args: object) -> None:
        raise OSError("power cut between the cloud's answer and the rename")

    with monkeypatch.context() as patch:
        patch.setattr(edge.enrollment, "_install_key", power_cut)
        with pytest.raises(OSError, match="power cut"):
            rotate_key(cloud_url=cloud.url, gateway_id=gateway_id, key_path=key_path)
    pending = load_gateway_key(next_key_path(key_path))
    assert key_path.read_bytes() == old_pem  # still a whole key, the one the cloud retired
    assert gateway_status(cloud, gateway_id)["public_key_pem"] == public_key_pem(
        pending.public_key()
    )

    assert edge_main(["rotate-key", "--config", str(config)]) == 0

    assert private_key_pem(load_gateway_key(key_path)) == private_key_pem(pending)
    asyncio.run(send(config, 1, 2, key_path=key_path))


def test_a_revoked_gateway_is_refused(
    cloud: Cloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    assert enroll_cli(cloud, invite(cloud, capsys), data_dir) == 0
    config = write_config(tmp_path, data_dir, cloud.url)
    gateway_id = load_config(config).gateway.id
    revoke = ["gateway", "revoke", "--id", gateway_id, "--reason", "stolen", "--db", cloud.db]
    assert cloud_main(revoke) == 0
    assert cloud_main(revoke) == 2  # already revoked
    capsys.readouterr()

    assert edge_main(["rotate-key", "--config", str(config)]) == 2

    assert "403 gateway_revoked" in capsys.readouterr().err
    events = chain_events([draft(1)], gateway_id=gateway_id)
    batch = httpx.post(
        f"{cloud.url}/v1/batches",
        content=batch_body(events, load_gateway_key(data_dir / "gateway.key")),
        headers=JSON,
    )
    assert batch.status_code == 403 and batch.json()["error"]["code"] == "gateway_revoked"


def test_invite_for_an_unknown_site_and_bad_lifetimes_exit_2(
    cloud: Cloud, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert cloud_main(["gateway", "invite", "--site", "nowhere", "--db", cloud.db]) == 2
    assert "no site 'nowhere'" in capsys.readouterr().err
    assert (
        cloud_main(["gateway", "invite", "--site", SITE, "--expires", "soon", "--db", cloud.db])
        == 2
    )
    assert "--expires 'soon'" in capsys.readouterr().err
    assert cloud_main(["site", "add", "--id", SITE, "--name", "again", "--db", cloud.db]) == 2
    assert "already exists" in capsys.readouterr().err


def test_an_agent_that_is_not_enrolled_exits_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    config = write_config(tmp_path, data_dir, "http://127.0.0.1:9")

    assert edge_main(["run", "--config", str(config)]) == 2

    assert "not enrolled: run tollgate-edge enroll" in capsys.readouterr().err
    assert not (data_dir / "outbox.sqlite").exists()


def test_a_configured_id_and_an_enrollment_must_agree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / ENROLLMENT_FILE).write_bytes(
        orjson.dumps(
            {
                "gateway_id": "gw-depot-7-abcd",
                "site_id": SITE,
                "cloud_url": "http://c",
                "enrolled_at": "2026-11-21T00:00:00Z",
            }
        )
    )
    config = write_config(tmp_path, data_dir, "http://127.0.0.1:9", gateway_id="site-1-gw1")

    assert edge_main(["run", "--config", str(config)]) == 2
    assert "differs from the enrolled id 'gw-depot-7-abcd'" in capsys.readouterr().err
    assert edge_main(["enroll", "--code", "TG-X", "--config", str(config)]) == 2
    assert "remove it, the cloud assigns the id" in capsys.readouterr().err
    write_config(tmp_path, data_dir, "http://127.0.0.1:9")
    assert load_config(config).gateway.id == "gw-depot-7-abcd"


async def test_the_forwarder_signs_anew_after_a_401_when_the_key_file_changed(
    tmp_path: Path,
) -> None:
    key_path = tmp_path / "gateway.key"
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    key_path.write_bytes(private_key_pem(old))
    key_path.chmod(0o600)
    seen: list[str] = []

    def collector(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json={"last_seq": None, "last_hash": None})
        batch = Batch.model_validate_json(gzip.decompress(request.content))
        try:
            verify_batch(batch, new.public_key())
        except Exception:
            seen.append("old")
            # `rotate-key` finishes while this batch is on the wire: the file is replaced.
            replacement = tmp_path / "gateway.key.next"
            replacement.write_bytes(private_key_pem(new))
            replacement.chmod(0o600)
            os.replace(replacement, key_path)
            return httpx.Response(401, json={"error": {"code": "key_retired"}})
        seen.append("new")
        return httpx.Response(200, json={})

    async with (
        Outbox(tmp_path / "o.sqlite", gateway_id="gw-1", budget_bytes=10**8) as outbox,
        httpx.AsyncClient(transport=httpx.MockTransport(collector), base_url="http://c") as client,
    ):
        await outbox.append([draft(1), draft(2)])
        forwarder = Forwarder(
            outbox=outbox, client=client, gateway_id="gw-1", key=old, config=FAST, key_path=key_path
        )
        assert await forwarder.forward_pending() == 2
    assert seen == ["old", "new"]
    assert forwarder.health.refusals == {401: 1}


def test_enrollment_failures_are_gateway_errors(tmp_path: Path) -> None:
    with pytest.raises(EnrollmentFailed, match="cannot reach the collector"):
        enroll(
            cloud_url="http://127.0.0.1:9",
            code="TG-X",
            data_dir=tmp_path,
            key_path=tmp_path / "gateway.key",
        )
    assert not (tmp_path / ENROLLMENT_FILE).exists()


def test_enroll_without_a_password_says_so_and_set_password_sets_one_afterwards(
    cloud: Cloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    assert enroll_cli(cloud, invite(cloud, capsys), data_dir) == 0  # no terminal: nothing asked
    assert capsys.readouterr().out.splitlines()[-1] == NO_PASSWORD_NOTICE
    secret = tmp_path / "pw"
    secret.write_text("correct horse battery\n")
    config = write_config(tmp_path, data_dir, cloud.url)

    set_password = ["technician", "set-password", "--config", str(config), "--file", str(secret)]

    assert edge_main(set_password) == 0  # enroll itself refuses to run twice

    assert "technician password set in" in capsys.readouterr().out
    assert load_password_hash(data_dir) is not None


def test_enroll_with_a_password_file_stores_it_and_adds_no_notice(
    cloud: Cloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "pw"
    secret.write_text("correct horse battery\n")
    code = invite(cloud, capsys)
    args = ["enroll", "--cloud", cloud.url, "--code", code, "--data-dir", str(tmp_path / "data")]

    assert edge_main([*args, "--technician-password-file", str(secret)]) == 0

    out = capsys.readouterr().out
    assert "technician password stored in" in out and NO_PASSWORD_NOTICE not in out
