"""Each extra alone runs its console script: `pip install '.[cloud]'`, `'.[edge]'` and
`'.[sims]'`, each in a fresh virtualenv, then real subcommands and an import of every module of
the packages that extra serves (a module needing another extra's package fails)."""

from pathlib import Path

import pytest

from fuzz.collector import free_port, serving
from tests.install.venvs import (
    PACKAGED,
    REPO,
    build_wheel,
    checked,
    clean_env,
    copy_packaged,
    import_every_module,
    run,
    venv_with,
)

pytestmark = pytest.mark.slow
CATALOG = REPO / "firmware_sims" / "demo_catalog.toml"
NO_SYSTEM_ZONES = clean_env(PYTHONTZPATH="")  # as on a slim image: zones only from the extra


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built once from a copy of this checkout's packaged files."""
    context = copy_packaged(PACKAGED, REPO, tmp_path_factory.mktemp("source") / "tollgate")
    return build_wheel(context, tmp_path_factory.mktemp("wheels"))


def test_the_cloud_extra_alone_migrates_loads_a_catalog_and_serves(
    wheel: Path, tmp_path: Path
) -> None:
    bin_dir = venv_with(wheel, "cloud", tmp_path / "venv")
    assert "imported cloud" in import_every_module(bin_dir, ["cloud", "shared"], cwd=tmp_path)
    cloud, db = bin_dir / "tollgate-cloud", f"sqlite+aiosqlite:///{tmp_path}/cloud.sqlite"

    assert "database at revision" in checked(run([cloud, "migrate", "--db", db], cwd=tmp_path))
    load = run([cloud, "catalog", "load", CATALOG, "--db", db], cwd=tmp_path, env=NO_SYSTEM_ZONES)
    checked(load)
    key = checked(run([cloud, "apikey", "create", "--name", "ci", "--db", db], cwd=tmp_path))
    (tmp_path / "key").write_text(key.strip())

    port = free_port()
    serve: list[str | Path] = [
        cloud,
        "serve",
        "--db",
        db,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    log = tmp_path / "serve.log"
    with serving(serve, port=port, log=log, cwd=tmp_path, env=NO_SYSTEM_ZONES) as base_url:
        # verify-invoice --url goes through httpx: the collector's own answer comes back.
        verify: list[str | Path] = [cloud, "verify-invoice", "999", "--url", base_url]
        answer = run([*verify, "--api-key-file", tmp_path / "key"], cwd=tmp_path)
    assert answer.returncode == 2, answer.stderr
    assert "GET /v1/invoices/999: 404" in answer.stderr
    assert "Traceback" not in answer.stderr


def test_the_edge_extra_alone_writes_and_checks_a_config_and_makes_a_key(
    wheel: Path, tmp_path: Path
) -> None:
    bin_dir = venv_with(wheel, "edge", tmp_path / "venv")
    assert "imported edge" in import_every_module(bin_dir, ["edge", "shared"], cwd=tmp_path)
    edge = bin_dir / "tollgate-edge"
    assert "check-config" in checked(run([edge, "--help"], cwd=tmp_path))
    (tmp_path / "password").write_text("a technician's password\n")
    drivers = "modbus,it100,lines,mqtt,ble-lock"
    init: list[str | Path] = [
        edge,
        "init",
        "--drivers",
        drivers,
        "--out",
        "site.toml",
        "--gateway-id",
        "gw-1",
    ]
    init += ["--data-dir", tmp_path / "data", "--technician-password-file", "password"]
    checked(run(init, cwd=tmp_path))

    ok = checked(run([edge, "check-config", "--config", "site.toml"], cwd=tmp_path))
    assert "ok (gateway gw-1, 5 devices" in ok
    key = checked(run([edge, "keygen", "--config", "site.toml"], cwd=tmp_path))
    assert key.startswith("-----BEGIN PUBLIC KEY-----")
    # Only the edge's packages were installed: the collector's are not there to lean on.
    collector = run([bin_dir / "python", "-c", "import cloud.app"], cwd=tmp_path)
    assert "No module named 'fastapi'" in collector.stderr


def test_the_sims_extra_alone_runs_a_simulator_and_has_the_demo(
    wheel: Path, tmp_path: Path
) -> None:
    bin_dir = venv_with(wheel, "sims", tmp_path / "venv")
    packages = ["firmware_sims", "edge", "cloud", "shared"]
    assert "imported firmware_sims" in import_every_module(bin_dir, packages, cwd=tmp_path)
    sim = bin_dir / "tollgate-sim"
    assert "demo" in checked(run([sim, "--help"], cwd=tmp_path))
    # The embedded MQTT broker (amqtt) is the sims extra's own package.
    published = checked(run([sim, "mqtt-device", "--duration", "2"], cwd=tmp_path))
    assert "mqtt-device published" in published
    assert "published 0 messages" not in published
