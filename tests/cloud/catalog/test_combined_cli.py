"""`tollgate-cloud combined add | list` against a real database (both backends)."""

import json

import pytest

from cloud.cli import main
from tests.cloud.test_cli import plain_url


def test_add_and_list_combined_rules(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    url = plain_url(db_url)
    assert main(["migrate", "--db", url]) == 0
    for profile in ("panel", "camera"):
        add = ["profile", "add", "--id", profile, "--name", profile, "--start-on", "on"]
        assert main([*add, "--end-on", "off", "--db", url]) == 0
    rule = ["combined", "add", "cam-armed", "--name", "Camera while armed", "--scope", "account"]
    members = ["--combine", "intersection", "--member", "camera", "--member", "panel:1,2"]
    assert main([*rule, *members, "--db", url]) == 0
    capsys.readouterr()
    assert main(["combined", "list", "--db", url]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line) == {
        "id": "cam-armed",
        "scope": "account",
        "combine": "intersection",
        "members": [
            {"profile": "camera", "channels": []},
            {"profile": "panel", "channels": ["1", "2"]},
        ],
    }
    # an intersection of one member is refused, and nothing is written
    lone = ["combined", "add", "lone", "--name", "Lone", "--scope", "site"]
    assert main([*lone, "--combine", "intersection", "--member", "panel", "--db", url]) != 0
    assert "at least two members" in capsys.readouterr().err
    assert main(["combined", "list", "--db", url]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1
