"""Combined session rules in catalog files (`[[combined_rules]]` through `tollgate-cloud catalog
load`), and a combined rule's profile refusing a session rule (API and catalog file); both
backends."""

import asyncio
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from cloud.catalog.combined_rules import CombinedSessionRule
from cloud.catalog.models import DeviceProfile, Metric
from cloud.cli import main
from cloud.db import Database
from cloud.gateways.models import Site
from tests.cloud.catalog.conftest import post_ok
from tests.cloud.conftest import error_code
from tests.cloud.test_cli import plain_url

CATALOG = """
[[profiles]]
id = "panel"
name = "Panel"
start_on = ["armed"]
end_on = ["disarmed"]

[[profiles]]
id = "camera"
name = "Camera"
start_on = ["stream_start"]
end_on = ["stream_stop"]

[[combined_rules]]
id = "site-armed"
name = "Site armed"
scope = "site"
combine = "union"
members = [{ profile = "panel" }]

[[combined_rules]]
id = "cam-armed"
name = "Camera while armed"
scope = "account"
combine = "intersection"
members = [{ profile = "camera" }, { profile = "panel", channels = ["2", "1"] }]

[[metrics]]
id = "armed_hours"
name = "Armed hours"
source = "sessions"
aggregation = "sum"
field = "duration"
profiles = ["site-armed"]
"""


async def cli(argv: list[str]) -> int:
    """`tollgate-cloud argv` in a thread (it runs its own event loop); its exit status."""
    return await asyncio.to_thread(main, argv)


async def counts(db: Database) -> tuple[int, int, int, int]:
    """(combined rules, profiles, metrics, sites) stored."""
    async with db.transaction() as session:
        return (
            await session.scalar(select(func.count()).select_from(CombinedSessionRule)) or 0,
            await session.scalar(select(func.count()).select_from(DeviceProfile)) or 0,
            await session.scalar(select(func.count()).select_from(Metric)) or 0,
            await session.scalar(select(func.count()).select_from(Site)) or 0,
        )


async def test_catalog_load_creates_combined_rules_and_leaves_identical_ones(
    db: Database, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(CATALOG)
    url = plain_url(db_url)

    assert await cli(["catalog", "load", str(path), "--dry-run", "--db", url]) == 0
    out = capsys.readouterr().out
    assert "create combined rule site-armed\ncreate combined rule cam-armed\n" in out
    assert await counts(db) == (0, 0, 0, 0)

    assert await cli(["catalog", "load", str(path), "--db", url]) == 0
    assert "combined rules: 2 created, 0 updated, 0 unchanged" in capsys.readouterr().out
    async with db.transaction() as session:
        rule = await session.get(CombinedSessionRule, "cam-armed")
        profile = await session.get(DeviceProfile, "cam-armed")
    assert rule is not None and profile is not None
    assert (rule.scope, rule.combine, profile.name) == (
        "account",
        "intersection",
        "Camera while armed",
    )
    assert rule.members == [
        {"profile": "camera", "channels": []},
        {"profile": "panel", "channels": ["1", "2"]},
    ]
    assert await counts(db) == (2, 4, 1, 0)  # 2 profiles + the 2 rules' profiles

    # loaded again: unchanged (the channels were sorted when stored, as declared they compare)
    assert await cli(["catalog", "load", str(path), "--dry-run", "--db", url]) == 0
    out = capsys.readouterr().out
    assert "unchanged combined rule site-armed\nunchanged combined rule cam-armed\n" in out
    assert await cli(["catalog", "load", str(path), "--db", url]) == 0
    assert "combined rules: 0 created, 0 updated, 2 unchanged" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            'combine = "intersection"',
            'combine = "union"',
            "combined rule cam-armed: combined rule 'cam-armed' already exists with other values "
            "(combine: 'intersection' -> 'union'): a combined rule never changes",
        ),
        (
            'channels = ["2", "1"]',
            'channels = ["1"]',
            "(members: [{'profile': 'camera', 'channels': []}, {'profile': 'panel', "
            "'channels': ['1', '2']}] -> [{'profile': 'camera', 'channels': []}, "
            "{'profile': 'panel', 'channels': ['1']}])",
        ),
        ('name = "Site armed"', 'name = "Armed"', "(name: 'Site armed' -> 'Armed')"),
    ],
)
async def test_a_changed_combined_rule_is_an_error_naming_it_and_nothing_is_written(
    db: Database,
    db_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    old: str,
    new: str,
    message: str,
) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(CATALOG)
    url = plain_url(db_url)
    assert await cli(["catalog", "load", str(path), "--db", url]) == 0
    before = await counts(db)
    assert CATALOG.count(old) == 1
    path.write_text(CATALOG.replace(old, new) + '\n[[sites]]\nid = "home"\nname = "Home"\n')
    capsys.readouterr()

    for dry_run in (["--dry-run"], []):
        assert await cli(["catalog", "load", str(path), *dry_run, "--db", url]) == 2
        assert message in capsys.readouterr().err
    assert await counts(db) == before  # the new site of the same file was not written either
    async with db.transaction() as session:
        rule = await session.get(CombinedSessionRule, "cam-armed")
    assert rule is not None and rule.combine == "intersection"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            'scope = "site"',
            'scope = "planet"',
            "catalog file: combined rule site-armed: scope: Input should be 'site' or 'account'",
        ),
        (
            'members = [{ profile = "panel" }]',
            'members = [{ profile = "ghost" }]',
            "combined rule site-armed: combined rule 'site-armed': unknown member profile(s) ghost",
        ),
        (
            'members = [{ profile = "panel" }]',
            'members = [{ profile = "panel", channel = ["1"] }]',
            "catalog file: combined rule site-armed, member panel: channel: Extra inputs are not "
            "permitted",
        ),
        (
            'members = [{ profile = "panel" }]',
            "members = []",
            "combined rule site-armed: combined rule 'site-armed': it needs at least one member",
        ),
    ],
)
async def test_a_bad_combined_rule_is_refused_naming_it_and_nothing_is_written(
    db: Database,
    db_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    old: str,
    new: str,
    message: str,
) -> None:
    path = tmp_path / "catalog.toml"
    assert CATALOG.count(old) == 1
    path.write_text(CATALOG.replace(old, new))
    assert await cli(["catalog", "load", str(path), "--db", plain_url(db_url)]) == 2
    assert message in capsys.readouterr().err
    assert await counts(db) == (0, 0, 0, 0)


async def test_a_combined_rules_profile_takes_no_session_rule(
    api: httpx.AsyncClient,
    db: Database,
    db_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await post_ok(
        api,
        "/v1/profiles",
        {"id": "panel", "name": "Panel", "start_on": ["armed"], "end_on": ["disarmed"]},
    )
    rule = {"id": "site-armed", "name": "Site armed", "scope": "site", "combine": "union"}
    await post_ok(api, "/v1/combined-rules", rule | {"members": [{"profile": "panel"}]})

    body = {"start_on": ["armed"], "end_on": ["disarmed"], "timeout_seconds": None}
    answer = await api.put("/v1/profiles/site-armed/rule", json=body)
    assert answer.status_code == 422, answer.text
    assert error_code(answer) == "invalid_billing_input"
    assert answer.json()["error"]["message"].startswith(
        "profile 'site-armed' is combined rule 'site-armed': its sessions are combined"
    )
    # the member profile itself still takes a new rule
    assert (await api.put("/v1/profiles/panel/rule", json=body)).status_code == 200

    # the same through a catalog file declaring the rule's profile with a session rule
    path = tmp_path / "catalog.toml"
    path.write_text('[[profiles]]\nid = "site-armed"\nname = "Site armed"\nstart_on = ["armed"]\n')
    assert await cli(["catalog", "load", str(path), "--db", plain_url(db_url)]) == 2
    assert "profile site-armed: profile 'site-armed' is combined rule" in capsys.readouterr().err
    async with db.transaction() as session:
        profile = await session.get(DeviceProfile, "site-armed")
    assert profile is not None and profile.start_on == []
