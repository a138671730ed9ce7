"""`tollgate-cloud`: migrate, gateway add/show, serve's schema check; expected errors exit 2."""

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.cli import main
from shared.signing import public_key_pem


def plain_url(db_url: str) -> str:
    """The URL as a user would type it (`sqlite:///`, `postgresql://`): the CLI normalizes it."""
    return db_url.replace("+aiosqlite", "").replace("+asyncpg", "")


@pytest.fixture
def url(db_url: str) -> str:
    """A database URL in the form users type."""
    return plain_url(db_url)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    """A PEM Ed25519 public key file."""
    path = tmp_path / "gw.pub.pem"
    path.write_text(public_key_pem(Ed25519PrivateKey.generate().public_key()))
    return path


def test_migrate_add_and_show_a_gateway(
    url: str, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate", "--db", url]) == 0
    assert main(["migrate", "--db", url]) == 0
    assert (
        main(["gateway", "add", "--id", "site-1-gw1", "--public-key", str(key_file), "--db", url])
        == 0
    )
    capsys.readouterr()

    assert main(["gateway", "show", "--id", "site-1-gw1", "--db", url]) == 0

    shown = orjson.loads(capsys.readouterr().out)
    assert shown["gateway_id"] == "site-1-gw1"
    assert shown["last_seq"] is None and shown["missing_ranges"] == []


def test_database_url_can_come_from_the_environment(
    url: str, key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOLLGATE_DB", url)

    assert main(["migrate"]) == 0
    assert main(["gateway", "add", "--id", "gw-env", "--public-key", str(key_file)]) == 0
    assert main(["gateway", "show", "--id", "gw-env", "--db", url]) == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"hello, not a key\n", "not an Ed25519 public key"),
        (
            rsa.generate_private_key(public_exponent=65537, key_size=1024)
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            "not an Ed25519 key",
        ),
    ],
    ids=["not-pem", "rsa"],
)
def test_bad_key_file_exits_2_with_a_clear_message(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    assert main(["migrate", "--db", url]) == 0
    bad = tmp_path / "bad.pem"
    bad.write_bytes(content)
    capsys.readouterr()

    code = main(["gateway", "add", "--id", "gw-1", "--public-key", str(bad), "--db", url])

    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err
    assert main(["gateway", "show", "--id", "gw-1", "--db", url]) == 2


def test_missing_key_file_duplicate_id_and_unknown_gateway(
    url: str, key_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate", "--db", url]) == 0
    add = ["gateway", "add", "--id", "gw-1", "--db", url, "--public-key"]
    assert main([*add, str(key_file)]) == 0
    capsys.readouterr()

    assert main([*add, str(tmp_path / "absent.pem")]) == 2
    assert "cannot read public key file" in capsys.readouterr().err
    assert main([*add, str(key_file)]) == 2
    assert "already registered" in capsys.readouterr().err
    assert (
        main(["gateway", "add", "--id", "bad id!", "--db", url, "--public-key", str(key_file)]) == 2
    )
    assert "invalid gateway id" in capsys.readouterr().err
    assert main(["gateway", "show", "--id", "nobody", "--db", url]) == 2
    assert "no gateway 'nobody'" in capsys.readouterr().err


def test_serve_refuses_an_unmigrated_database(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--db", url, "--port", "1"]) == 2

    assert "tollgate-cloud migrate" in capsys.readouterr().err


def test_unsupported_url_exits_2(capsys: pytest.CaptureFixture[str], db_url: str) -> None:
    assert main(["migrate", "--db", "mysql://localhost/x"]) == 2

    assert "unsupported database URL scheme 'mysql'" in capsys.readouterr().err


def test_console_script_prints_no_traceback(url: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    command = [sys.executable, "-m", "cloud.cli"]
    migrated = subprocess.run(
        [*command, "migrate", "--db", url], capture_output=True, text=True, timeout=60, check=False
    )
    assert migrated.returncode == 0, migrated.stderr

    result = subprocess.run(
        [*command, "gateway", "add", "--id", "gw-1", "--public-key", str(bad), "--db", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    assert "not an Ed25519 public key" in result.stderr
    assert "Traceback" not in result.stderr
