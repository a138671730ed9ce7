"""`tollgate-cloud` catalog commands against a real database; expected errors exit 2 with one
line on stderr and change nothing."""

import json
from pathlib import Path

import pytest

from cloud.cli import main
from tests.cloud.test_cli import plain_url


@pytest.fixture
def url(db_url: str) -> str:
    """A migrated database, as users type its URL."""
    url = plain_url(db_url)
    assert main(["migrate", "--db", url]) == 0
    return url


def run(capsys: pytest.CaptureFixture[str], url: str, *argv: str) -> tuple[int, str, str]:
    """Run one command; (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = main([*argv, "--db", url])
    out, err = capsys.readouterr()
    return code, out, err


def fails(capsys: pytest.CaptureFixture[str], url: str, *argv: str) -> str:
    """Run a command that must fail as expected: exit 2, one line on stderr; that line."""
    code, out, err = run(capsys, url, *argv)
    assert code == 2, (out, err)
    assert err.startswith("tollgate-cloud: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def test_apikey_create_list_and_revoke(capsys: pytest.CaptureFixture[str], url: str) -> None:
    code, out, err = run(capsys, url, "apikey", "create", "--name", "billing team")
    secret = out.strip()
    assert code == 0 and secret.startswith("tg_") and out.count("\n") == 1
    assert "shown only now" in err and secret[:11] in err and secret not in err

    code, listing, _ = run(capsys, url, "apikey", "list")
    assert code == 0 and secret[:11] in listing and "billing team" in listing
    assert "admin" in listing and secret not in listing

    assert run(capsys, url, "apikey", "revoke", "--prefix", secret[:11])[0] == 0
    code, listing, _ = run(capsys, url, "apikey", "list")
    row = next(line for line in listing.splitlines() if line.startswith(secret[:11]))
    assert len(row.split()) == 6  # prefix, name (2 words), scope, created, revoked
    assert "no live API key" in fails(capsys, url, "apikey", "revoke", "--prefix", secret[:11])


def test_the_catalog_is_built_from_the_command_line(
    capsys: pytest.CaptureFixture[str], url: str, tmp_path: Path
) -> None:
    terms = tmp_path / "basic.json"
    terms.write_text(
        json.dumps(
            {
                "effective_from": "2026-11-01T00:00:00+01:00",
                "base_fee": "9.90",
                "charges": [{"metric": "tv-hours", "model": "standard", "unit_price": "0.10"}],
            }
        )
    )
    later = tmp_path / "basic-2027.toml"
    later.write_text('effective_from = 2027-01-01T00:00:00+01:00\nbase_fee = "11.00"\n')
    steps = [
        [
            "profile",
            "add",
            "--id",
            "tv",
            "--name",
            "TV",
            "--start-on",
            "power_on",
            "--end-on",
            "power_off,standby",
            "--timeout",
            "4h",
        ],
        ["device", "add", "--id", "tv-1", "--name", "Living room", "--profile", "tv"],
        [
            "metric",
            "add",
            "--id",
            "tv-hours",
            "--name",
            "TV hours",
            "--source",
            "sessions",
            "--aggregation",
            "sum",
            "--field",
            "duration",
            "--profiles",
            "tv",
        ],
        ["plan", "add", "--id", "basic", "--name", "Basic", "--currency", "EUR"],
        ["plan", "version", "--plan", "basic", "--terms", str(terms)],
        ["plan", "version", "--plan", "basic", "--terms", str(later)],
        [
            "account",
            "add",
            "--id",
            "smith",
            "--name",
            "The Smiths",
            "--kind",
            "household",
            "--currency",
            "EUR",
            "--time-zone",
            "Europe/Berlin",
        ],
        [
            "account",
            "add",
            "--id",
            "jones",
            "--name",
            "Jones",
            "--kind",
            "household",
            "--currency",
            "EUR",
            "--time-zone",
            "Europe/Berlin",
            "--plan",
            "basic",
            "--series",
            "J",
        ],
        ["account", "set-plan", "--id", "smith", "--plan", "basic"],
        ["bind", "--device", "tv-1", "--account", "smith", "--from", "2026-11-01T00:00:00+01:00"],
        [
            "bind",
            "--device",
            "tv-1",
            "--account",
            "jones",
            "--from",
            "2026-11-15T00:00:00+01:00",
            "--move",
        ],
    ]
    outputs = []
    for argv in steps:
        code, out, err = run(capsys, url, *argv)
        assert code == 0, (argv, err)
        outputs.append(out)

    assert "plan basic version 1" in outputs[4] and "plan basic version 2" in outputs[5]
    assert "billed to jones from 2026-11-14T23:00:00+00:00 on" in outputs[10]
    code, listing, _ = run(capsys, url, "account", "list")
    lines = listing.splitlines()
    assert lines[0].split() == ["id", "name", "kind", "currency", "time_zone", "plan", "series"]
    assert lines[1].split() == ["jones", "Jones", "household", "EUR", "Europe/Berlin", "basic", "J"]
    assert lines[2].split()[0] == "smith" and lines[2].split()[-2:] == ["basic", "INV"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            [
                "account",
                "add",
                "--id",
                "x",
                "--name",
                "X",
                "--kind",
                "household",
                "--currency",
                "EUX",
                "--time-zone",
                "Europe/Berlin",
            ],
            "unknown currency 'EUX'",
        ),
        (
            [
                "account",
                "add",
                "--id",
                "x",
                "--name",
                "X",
                "--kind",
                "household",
                "--currency",
                "EUR",
                "--time-zone",
                "Mars/Olympus",
            ],
            "Mars/Olympus",
        ),
        (
            [
                "account",
                "add",
                "--id",
                "x",
                "--name",
                "X",
                "--kind",
                "household",
                "--currency",
                "EUR",
                "--time-zone",
                "UTC",
                "--plan",
                "gold",
            ],
            "no plan 'gold'",
        ),
        (["account", "set-plan", "--id", "nobody", "--plan", "none"], "no account 'nobody'"),
        (
            [
                "profile",
                "add",
                "--id",
                "tv",
                "--name",
                "TV",
                "--start-on",
                "a",
                "--timeout",
                "soon",
            ],
            "--timeout 'soon'",
        ),
        (["device", "add", "--id", "tv-1", "--name", "TV", "--profile", "nope"], "no profile"),
        (
            ["bind", "--device", "tv-1", "--account", "smith", "--from", "2026-11-01T00:00:00"],
            "valid_from must carry a UTC offset",
        ),
        (
            ["bind", "--device", "tv-1", "--account", "smith", "--from", "next week"],
            "not an ISO 8601 time",
        ),
        (
            [
                "metric",
                "add",
                "--id",
                "m",
                "--name",
                "M",
                "--source",
                "events",
                "--aggregation",
                "sum",
                "--field",
                "duration",
            ],
            "duration is a field of sessions only",
        ),
        (["unbilled", "--from", "2026-11-01"], "must carry a UTC offset"),
        (["catalog", "load", "/nonexistent/catalog.toml"], "cannot read catalog file"),
    ],
    ids=[
        "currency",
        "time-zone",
        "unknown-plan",
        "unknown-account",
        "timeout",
        "unknown-profile",
        "naive-time",
        "not-a-time",
        "bad-metric",
        "naive-window",
        "missing-file",
    ],
)
def test_errors_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], url: str, argv: list[str], message: str
) -> None:
    assert message in fails(capsys, url, *argv)


def test_bad_terms_files_are_refused(
    capsys: pytest.CaptureFixture[str], url: str, tmp_path: Path
) -> None:
    assert (
        run(capsys, url, "plan", "add", "--id", "basic", "--name", "B", "--currency", "EUR")[0] == 0
    )
    floats = tmp_path / "floats.json"
    floats.write_text('{"effective_from": "2026-11-01T00:00:00+01:00", "base_fee": 9.9}')
    broken = tmp_path / "broken.toml"
    broken.write_text("effective_from = \n")
    unknown_metric = tmp_path / "unknown.json"
    unknown_metric.write_text(
        '{"effective_from": "2026-11-01T00:00:00Z", "charges": '
        '[{"metric": "litres", "model": "standard", "unit_price": "1"}]}'
    )

    assert "a float is not exact" in fails(
        capsys, url, "plan", "version", "--plan", "basic", "--terms", str(floats)
    )
    assert "not valid toml" in fails(
        capsys, url, "plan", "version", "--plan", "basic", "--terms", str(broken)
    )
    assert "litres" in fails(
        capsys, url, "plan", "version", "--plan", "basic", "--terms", str(unknown_metric)
    )


def test_unbilled_prints_a_table_or_json(capsys: pytest.CaptureFixture[str], url: str) -> None:
    code, out, _ = run(capsys, url, "unbilled")
    assert code == 0 and out.splitlines()[0].split()[:3] == ["device_id", "in", "catalog"]

    code, out, _ = run(capsys, url, "unbilled", "--json", "--from", "2026-11-01T00:00:00Z")
    assert code == 0 and json.loads(out) == []
