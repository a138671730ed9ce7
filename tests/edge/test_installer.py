"""`tollgate-edge init`, `check`, `support-bundle` and `scan`: the installer's commands, run
against real simulators (Modbus TCP panel, BLE locks on a virtual air, the real collector).

`main()` runs its own event loop, so async tests call it in a worker thread while the
simulators serve on the test's loop.
"""

import asyncio
import itertools
import sqlite3
import tarfile
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from edge.cli import main
from edge.config import load_config
from edge.diagnostics.password import load_password_hash
from edge.installer.init_config import DRIVER_ORDER
from edge.installer.support_bundle import REDACTED, redact_config
from firmware_sims.ble_air import VirtualAir
from firmware_sims.ble_lock import Scenario, SimLock, lock_address
from firmware_sims.it100_panel import It100Panel, LinesPanel
from firmware_sims.modbus_panel import ModbusPanel
from firmware_sims.processes import CollectorProcess
from firmware_sims.site import SimulatedLocks, SimulatedPanel, Timing, render_site_config
from tests.support.waiting import free_port

DRIVER_SETS = [
    list(combo) for n in range(1, 6) for combo in itertools.combinations(DRIVER_ORDER, n)
]


@pytest.mark.parametrize("drivers", DRIVER_SETS, ids=lambda d: "+".join(d))
def test_init_writes_a_starter_that_loads_as_written(tmp_path: Path, drivers: list[str]) -> None:
    out = tmp_path / "site.toml"
    args = ["init", "--drivers", ",".join(drivers), "--out", str(out)]
    assert main([*args, "--gateway-id", "site-9-gw2", "--data-dir", str(tmp_path)]) == 0
    config = load_config(out)
    assert config.gateway.id == "site-9-gw2"
    assert sorted({device.driver for device in config.device}) == sorted(drivers)
    lines = out.read_text().splitlines()
    keys = [line for line in lines if "=" in line and not line.startswith(("#", "[", "pattern"))]
    assert all("  # " in line for line in keys)  # every key is explained where it stands


def test_init_refuses_to_overwrite_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "site.toml"
    out.write_text("# mine\n")
    assert main(["init", "--drivers", "modbus", "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert out.read_text() == "# mine\n"
    assert main(["init", "--drivers", "modbus", "--out", str(out), "--force"]) == 0
    written = load_config(out, require_id=False)  # no id: `tollgate-edge enroll` assigns it
    assert written.device[0].driver == "modbus" and written.gateway.declared_id is None


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--drivers", "modbus,zigbee"], "--drivers"),
        (["--drivers", "modbus", "--gateway-id", "bad id!"], "field gateway.id"),
        (["--drivers", "modbus", "--cloud", "ftp://x"], "field gateway.cloud_url"),
    ],
)
def test_init_bad_arguments_exit_2_and_write_nothing(
    tmp_path: Path, args: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "site.toml"
    assert main(["init", *args, "--out", str(out)]) == 2
    assert named in capsys.readouterr().err
    assert not out.exists()


def test_init_stores_the_technician_password_hashed(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("correct horse battery\n")
    data_dir = tmp_path / "state"
    args = ["init", "--drivers", "it100", "--out", str(tmp_path / "s.toml")]
    assert (
        main([*args, "--data-dir", str(data_dir), "--technician-password-file", str(secret)]) == 0
    )
    stored = load_password_hash(data_dir)
    assert stored is not None and stored.startswith("scrypt$")
    assert "correct horse" not in stored


def _config(
    tmp_path: Path,
    *,
    cloud_url: str,
    panels: list[SimulatedPanel],
    locks: SimulatedLocks | None = None,
) -> Path:
    path = tmp_path / "site.toml"
    text = render_site_config(
        gateway_id="gw-check",
        cloud_url=cloud_url,
        data_dir=tmp_path / "state",
        panels=panels,
        timing=Timing(device_timeout="1s"),
        locks=locks,
    )
    path.write_text(text)
    return path


def _rows(out: str) -> dict[str, str]:
    """device -> the rest of its row."""
    return {line.split()[0]: line for line in out.splitlines()[1:-1]}


async def test_check_passes_with_a_live_panel_and_collector(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    collector = CollectorProcess(
        db_url=f"sqlite:///{tmp_path}/cloud.sqlite", port=free_port(), log_path=tmp_path / "c.log"
    )
    await collector.migrate()
    async with collector, ModbusPanel() as panel:
        port = panel.port
        counters = tuple(panel.counters.values())
        config = _config(
            tmp_path,
            cloud_url=collector.url,
            panels=[SimulatedPanel("panel-1", panel.port, counters)],
        )
        code = await asyncio.to_thread(main, ["check", "--config", str(config)])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = _rows(out)
    assert rows["panel-1"].split()[1:] == ["modbus", f"tcp://127.0.0.1:{port}", "✓"]
    assert rows["cloud"].endswith("✓")
    assert out.splitlines()[-1] == "2 of 2 ok"


async def test_check_names_the_reason_of_each_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dead_port, cloud_port = free_port(), free_port()
    async with ModbusPanel() as panel, VirtualAir(port=0) as air, AsyncExitStack() as stack:
        device = await air.add_peripheral("lock-0", lock_address(0))
        await stack.enter_async_context(SimLock(device, lock_id=500, scenario=Scenario(())))
        counters = tuple(panel.counters.values())
        config = _config(
            tmp_path,
            cloud_url=f"http://127.0.0.1:{cloud_port}",
            panels=[
                SimulatedPanel("panel-live", panel.port, counters),
                SimulatedPanel("panel-gone", dead_port, counters),
            ],
            locks=SimulatedLocks(air.backend, (("lock-here", 500), ("lock-wrong", 999))),
        )
        code = await asyncio.to_thread(main, ["check", "--config", str(config), "--timeout", "2s"])
    out = capsys.readouterr().out
    assert code == 1, out
    rows = _rows(out)
    assert rows["panel-live"].endswith("✓")
    assert rows["lock-here"].endswith("✓")
    assert f"✗ device 'panel-gone' at 127.0.0.1:{dead_port}: cannot connect" in rows["panel-gone"]
    assert "✗ lock 999 not heard in 2s" in rows["lock-wrong"]
    assert "✗ ConnectError" in rows["cloud"]
    assert out.splitlines()[-1] == "2 of 5 ok"


async def test_check_subscribes_to_each_mqtt_topic(
    tmp_path: Path, mqtt_broker: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out_path = tmp_path / "site.toml"
    assert main(["init", "--drivers", "mqtt", "--out", str(out_path)]) == 0
    text = out_path.read_text().replace("mqtts://broker.example.com:8883", mqtt_broker)
    text = "\n".join(
        line for line in text.splitlines() if not line.startswith(("username", "password_file"))
    )
    out_path.write_text(text)
    code = await asyncio.to_thread(main, ["check", "--config", str(out_path)])
    rows = _rows(capsys.readouterr().out)
    assert code == 1  # the example collector does not exist
    assert rows["camera-7"].endswith("✓")
    assert "✗" in rows["cloud"]


def _serial_device(device_id: str, driver: str, port: Path) -> str:
    pattern = "\npattern = '(?P<name>\\w+)'" if driver == "lines" else ""
    return f'\n[[device]]\nid = "{device_id}"\ndriver = "{driver}"\nport = "{port}"{pattern}\n'


async def test_check_opens_serial_ports_and_wants_the_it100_to_answer_its_poll(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "site.toml"
    text = f'[gateway]\nid = "gw"\ncloud_url = "http://127.0.0.1:{free_port()}"\n'
    text += f'data_dir = "{tmp_path}"\n'
    async with (
        It100Panel(link_path=tmp_path / "ttyIT100") as alarm,
        LinesPanel(link_path=tmp_path / "ttyPRN", tick=60) as printer,
        LinesPanel(link_path=tmp_path / "ttyOTHER", tick=60) as not_an_it100,
    ):
        text += _serial_device("alarm", "it100", alarm.link_path)
        text += _serial_device("printer", "lines", printer.link_path)
        text += _serial_device("printer-gone", "lines", tmp_path / "ttyNONE")
        text += _serial_device("alarm-wrong-port", "it100", not_an_it100.link_path)
        config.write_text(text)
        code = await asyncio.to_thread(main, ["check", "--config", str(config), "--timeout", "1s"])
    rows = _rows(capsys.readouterr().out)
    assert code == 1
    assert rows["alarm"].endswith("✓")
    assert rows["printer"].endswith("✓")
    assert f"✗ serial port {tmp_path / 'ttyNONE'}: no such device" in rows["printer-gone"]
    assert rows["alarm-wrong-port"].endswith("✗ no answer within 1s")  # no 500 for the poll


def test_check_with_a_bad_config_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "site.toml"
    path.write_text('[gateway]\nid = "gw"\n')
    assert main(["check", "--config", str(path)]) == 2
    assert "field gateway.cloud_url" in capsys.readouterr().err


MQTT_PASSWORD = "mqtt-pass-7f3a9c"
TECH_PASSWORD = "technician-pass-42"


def _plant_secrets(tmp_path: Path) -> tuple[Path, bytes]:
    """A gateway with a key, a technician password, an MQTT password and an outbox."""
    state = tmp_path / "state"
    config = tmp_path / "site.toml"
    secret_file = tmp_path / "pw"
    secret_file.write_text(TECH_PASSWORD)
    args = ["init", "--drivers", "modbus,mqtt", "--out", str(config), "--data-dir", str(state)]
    assert main([*args, "--technician-password-file", str(secret_file)]) == 0
    mqtt_password = tmp_path / "mqtt.password"
    mqtt_password.write_text(MQTT_PASSWORD)
    text = config.read_text().replace("/etc/tollgate/mqtt.password", str(mqtt_password))
    config.write_text(text + '\n# api_token = "tok-5151"\n')
    assert main(["keygen", "--config", str(config)]) == 0
    _outbox_with_a_dead_letter(state / "outbox.sqlite")
    (state / "status.json").write_text('{"state": "running"}')
    (state / "logs").mkdir()
    (state / "logs" / "agent.log").write_text('{"msg": "hello"}\n')
    (state / "outbox.sqlite.corrupt-20260101T000000Z").write_bytes(b"junk")
    return config, (state / "gateway.key").read_bytes()


def _outbox_with_a_dead_letter(path: Path) -> None:
    from edge.outbox import SCHEMA

    db = sqlite3.connect(path)
    db.executescript(SCHEMA)
    db.execute("INSERT INTO chain VALUES (1, 7, ?, 5, 1)", ("0" * 64,))
    db.execute(
        "INSERT INTO dead_letters (first_seq, last_seq, status, reason, events, created_at) "
        "VALUES (3, 4, 422, 'bad quantity', x'00', '2026-01-01T00:00:00Z')"
    )
    db.commit()
    db.close()


def test_support_bundle_has_the_state_and_none_of_the_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, key = _plant_secrets(tmp_path)
    bundle = tmp_path / "bundle.tar.gz"
    assert main(["support-bundle", "--config", str(config), "--out", str(bundle)]) == 0
    with tarfile.open(bundle) as tar:
        files = {
            member.name.removeprefix("support-bundle/"): tar.extractfile(member).read()  # type: ignore[union-attr]
            for member in tar.getmembers()
        }
    assert set(files) >= {
        "site.toml",
        "status.json",
        "outbox.json",
        "quarantine.json",
        "versions.json",
        "manifest.json",
        "logs/agent.log",
    }
    everything = b"".join(files.values())
    technician_hash = load_password_hash(tmp_path / "state")
    assert technician_hash is not None
    for secret in (key, technician_hash.encode(), MQTT_PASSWORD.encode(), b"tok-5151"):
        assert secret not in everything
    assert b"PRIVATE KEY" not in everything
    assert b"bad quantity" in files["outbox.json"] and b'"last_seq": 7' in files["outbox.json"]
    assert b"corrupt-20260101T000000Z" in files["quarantine.json"]
    assert str(tmp_path / "mqtt.password").encode() in files["site.toml"]  # paths stay


def test_redaction_keeps_paths_and_hides_values() -> None:
    text = 'password = "x"\nclient_secret="y"\npassword_file = "/etc/p"\nurl = "u"\n'
    assert redact_config(text).splitlines() == [
        f'password = "{REDACTED}"',
        f'client_secret= "{REDACTED}"',
        'password_file = "/etc/p"',
        'url = "u"',
    ]


def test_scan_alone_lists_the_discovery_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("modbus", "ble", "serial"))


def test_scan_serial_lists_ports_or_says_there_are_none(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["scan", "serial"])
    out = capsys.readouterr().out
    assert (code == 0 and out.startswith("/dev/")) or (code == 1 and "no serial ports" in out)
