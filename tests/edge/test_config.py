"""Site config: valid files load; every mistake names the file, line, device and field."""

from pathlib import Path

import pytest

from edge.config import load_config, parse_config, parse_listen
from edge.errors import ConfigError

GOOD = """\
[gateway]
id = "site-042-gw1"
cloud_url = "http://127.0.0.1:8000/"
data_dir = "/var/lib/tollgate"
outbox_budget_mb = 64

[forwarder]
batch_max_events = 200
batch_max_wait = "250ms"

[[device]]
id = "panel-1"
driver = "modbus"
url = "tcp://192.168.1.20:502"
unit = 3
poll_interval = "5s"

[[device.point]]
name = "door_open"
table = "input"
address = 0
type = "uint32"
word_order = "little"
"""


def test_good_config_loads(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(GOOD)
    config = load_config(path)
    device = config.device[0]
    assert config.gateway.cloud_url == "http://127.0.0.1:8000"
    assert config.forwarder.batch_max_wait == 0.25
    assert (device.host, device.port, device.unit, device.poll_interval) == (
        "192.168.1.20",
        502,
        3,
        5.0,
    )
    assert device.point[0].bits == 32 and device.point[0].register_count == 2
    assert config.gateway.outbox_path == Path("/var/lib/tollgate/outbox.sqlite")


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            'type = "uint32"',
            'type = "float99"',
            "site.toml:22: device 'panel-1', field device.point.type: Input should be",
        ),
        (
            'poll_interval = "5s"',
            "poll_interval = 5",
            "site.toml:16: device 'panel-1', field device.poll_interval: Value error, durations",
        ),
        (
            'url = "tcp://192.168.1.20:502"',
            'url = "http://x"',
            "site.toml:14: device 'panel-1', field device.url: Value error, 'http://x' is not a "
            "Modbus",
        ),
        (
            "address = 0",
            "address = 70000",
            "site.toml:21: device 'panel-1', field device.point.address: Input should be less",
        ),
        (
            "unit = 3",
            "unit = 3\ncolour = 1",
            "site.toml:16: device 'panel-1', field device.colour: Extra inputs are not permitted",
        ),
        (
            "outbox_budget_mb = 64",
            "outbox_budget_mb = -1",
            "site.toml:5: field gateway.outbox_budget_mb: Input should be greater than 0",
        ),
        (
            'name = "door_open"\n',
            "",
            "site.toml:18: device 'panel-1', field device.point.name: Field required",
        ),
    ],
)
def test_mistakes_name_file_line_device_and_field(old: str, new: str, expected: str) -> None:
    assert old in GOOD
    with pytest.raises(ConfigError) as caught:
        parse_config(GOOD.replace(old, new, 1), source="site.toml")
    assert str(caught.value).startswith(expected), str(caught.value)


def test_toml_syntax_error_names_the_file() -> None:
    with pytest.raises(ConfigError, match=r"site.toml: not valid TOML: .*line 2"):
        parse_config('[gateway]\nid = "unterminated\n', source="site.toml")


def test_duplicate_device_ids_are_refused() -> None:
    twice = GOOD + GOOD[GOOD.index("[[device]]") :]
    with pytest.raises(ConfigError, match="device id 'panel-1' is used twice"):
        parse_config(twice, source="site.toml")


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope.toml: cannot read config"):
        load_config(tmp_path / "nope.toml")


def with_diagnostics(body: str) -> str:
    """GOOD with a [diagnostics] table inserted before [forwarder] (line 7 onwards)."""
    return GOOD.replace("[forwarder]", f"[diagnostics]\n{body}\n\n[forwarder]", 1)


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ('"off"', "'off' is not host:port like"),
        ('""', "'' is not host:port like"),
        ('"127.0.0.1"', "'127.0.0.1' is not host:port like"),
        ('"127.0.0.1:99999"', "port 99999 is not 1..65535"),
        ('"127.0.0.1:http"', "is not host:port like"),
        ('"::1:8080"', "write an IPv6 address in brackets"),
        ('"[10.0.0.1]:8080"', "only an IPv6 address goes in brackets"),
        ('"gate way:8080"', "'gate way' is not an IP address or host name"),
    ],
)
def test_diagnostics_listen_is_checked_when_the_config_loads(listen: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(with_diagnostics(f"listen = {listen}"), source="site.toml")
    message = str(caught.value)
    assert message.startswith("site.toml:8: field diagnostics.listen: Value error, "), message
    assert expected in message
    if listen == '"off"':
        assert "to turn the page off, set enabled = false" in message


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [
        ('"127.0.0.1:8080"', "127.0.0.1", 8080),
        ('"0.0.0.0:80"', "0.0.0.0", 80),
        ('"[::1]:8443"', "::1", 8443),
        ('"gateway.local:8080"', "gateway.local", 8080),
        ('"127.0.0.1:0"', "127.0.0.1", 0),  # any free port (tests)
    ],
)
def test_diagnostics_listen_accepts_host_and_port(listen: str, host: str, port: int) -> None:
    config = parse_config(with_diagnostics(f"listen = {listen}"), source="site.toml")
    assert config.diagnostics.enabled
    assert parse_listen(config.diagnostics.listen) == (host, port)


def test_diagnostics_page_can_be_turned_off() -> None:
    config = parse_config(with_diagnostics("enabled = false"), source="site.toml")
    assert not config.diagnostics.enabled
    assert parse_config(GOOD, source="site.toml").diagnostics.enabled  # on by default


def test_max_server_errors_is_at_least_one() -> None:
    text = GOOD.replace(
        'batch_max_wait = "250ms"', 'batch_max_wait = "250ms"\nmax_server_errors = 0'
    )
    with pytest.raises(ConfigError, match=r"site.toml:10: field forwarder.max_server_errors"):
        parse_config(text, source="site.toml")
    assert parse_config(GOOD, source="site.toml").forwarder.max_server_errors == 5
