"""The demo's site config gives the panels' points their physical units, and the demo catalog's
unit-filtered metrics still match them.

No mocks: the config is rendered by firmware_sims.site, validated by the agent's own parser, and
compared with the catalog file the demo loads.
"""

import tomllib
from pathlib import Path

from edge.config import ModbusDeviceConfig, parse_config
from firmware_sims.demo import CATALOG, PANEL_UNITS
from firmware_sims.modbus_panel import default_scenario
from firmware_sims.site import SimulatedPanel, render_site_config


def demo_point_units() -> dict[str, str]:
    """Point name -> unit of a demo panel, as the agent reads the rendered config."""
    panel = SimulatedPanel("panel-1", 5020, default_scenario().counters, point_units=PANEL_UNITS)
    text = render_site_config(
        gateway_id="gw", cloud_url="http://127.0.0.1:8000", data_dir=Path("/tmp/x"), panels=[panel]
    )
    (device,) = parse_config(text, source="demo site").device
    assert isinstance(device, ModbusDeviceConfig)
    return {point.name: point.unit for point in device.point}


def test_demo_panel_points_carry_energy_in_wh_and_runtime_in_s() -> None:
    assert demo_point_units() == {
        "cycles": "count",
        "door_open": "count",
        "energy_wh": "Wh",
        "runtime_s": "s",
    }


def test_a_panel_without_point_units_reports_count() -> None:
    panel = SimulatedPanel("panel-1", 5020, default_scenario().counters)
    text = render_site_config(
        gateway_id="gw", cloud_url="http://127.0.0.1:8000", data_dir=Path("/tmp/x"), panels=[panel]
    )
    (device,) = parse_config(text, source="site").device
    assert isinstance(device, ModbusDeviceConfig)
    assert {point.unit for point in device.point} == {"count"}


def test_the_demo_catalog_metrics_on_panel_points_match_their_units() -> None:
    units = demo_point_units()
    catalog = tomllib.loads(CATALOG.read_text())
    panel_metrics = [
        metric
        for metric in catalog["metrics"]
        if "alarm-panel" in metric.get("profiles", []) and metric["source"] == "events"
    ]
    billed = {
        charge["metric"]
        for plan in catalog["plans"]
        for version in plan["versions"]
        for charge in version["charges"]
    }
    checked = 0
    for metric in panel_metrics:
        for name in metric.get("names", []):
            assert name in units, (metric["id"], name)
            if "unit" in metric:
                assert metric["unit"] == units[name], metric["id"]
                checked += 1
    assert checked >= 1  # panel_energy_wh filters on Wh
    assert "panel_energy_wh" in billed
