"""`make demo` runs `tollgate-sim demo`: the whole site in a box must balance its books.

Run as the command itself (a child process), with a free collector port and the embedded MQTT
broker, for a short duration: every source (Modbus panels, BLE locks, MQTT devices) must end
"ok" against what the simulators really did. Then the invoices a customer receives: the company's
(two VAT rates, finalized with --force), a credit note for one of its lines, their HTML, PDF and
Factur-X files in the workdir, the e-invoices valid against the Factur-X EN 16931 XSD. The
terminal ends with a few lines per account naming its files; the drafts, sessions and VAT summaries
are in billing-details.txt, not on stdout. A workdir an earlier run left is emptied, and said so.
"""

import asyncio
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import facturx
import httpx
import pytest

from firmware_sims.demo import MARKER, fresh_workdir
from firmware_sims.demo_billing import DETAILS, DetailLog
from tests.cloud.console.helpers import hidden_csrf
from tests.support.waiting import free_port

BIN = Path(sys.executable).parent


async def test_the_demo_balances_every_source(tmp_path: Path) -> None:
    port = free_port()
    workdir = tmp_path / "demo"
    workdir.mkdir()  # what an earlier run left: the demo empties it and says so
    (workdir / MARKER).write_text("")
    (workdir / "CO-000001.html").write_text("an earlier run's invoice")
    command = [
        str(BIN / "tollgate-sim"),
        "demo",
        "--duration",
        "10",
        "--workdir",
        str(workdir),
        "--cloud-port",
        str(port),
        "--stay",
    ]
    result = await run_and_visit_the_console(command, f"http://127.0.0.1:{port}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.startswith(f"{workdir}/ from an earlier run was reset: each run starts")
    assert (workdir / "CO-000001.html").read_text() != "an earlier run's invoice"
    summary = result.stdout.split("What the panels counted vs what the cloud stored:")[1]
    lines = [line.split()[0] for line in summary.splitlines() if line.strip().endswith("ok")]
    assert {"waste-lock-1", "door-lock-1", "camera-1", "home-1"} <= set(lines)
    assert any(line.startswith("panel-1.") for line in lines)
    assert "MISMATCH" not in summary
    assert "missing ranges []" in summary
    # the fleet view: the agent's heartbeats keep its gateway twin online; the panels' scripted
    # 16-bit wrap (in their first seconds) is an open data-quality incident
    assert "fleet view: gateway online" in summary
    assert "counter_wrap" in summary

    direct = summary.split("Direct source yard-bins: POST /v1/events")[1].split("Billing period")[0]
    assert "sent: 4 events, stored 4, 0 already stored, 0 rejected" in direct
    assert "re-sent: 4 events, stored 0, 4 already stored, 0 rejected" in direct
    assert "2 rows, stored 2, 0 already stored, 0 rejected" in direct
    assert "2 rows, stored 0, 2 already stored, 0 rejected" in direct

    assert "2 drafted, 0 updated" in summary.split("Billing period ")[1]
    # the long printouts are in the details file, not on the terminal
    assert "sessions behind it:" not in result.stdout and "deactivated" not in result.stdout
    assert "VAT S " not in result.stdout
    billing = (workdir / DETAILS).read_text()
    for account in ("weber-household", "nordlicht-facility"):
        block = billing.split(f"account {account}, period")[1].split("sessions behind it:")[0]
        assert_total_is_sum_of_lines(block)
    sessions = billing.split("sessions behind it:")[1:]
    assert all("deactivated" in listed for listed in sessions)
    direct_sessions = [
        line for line in billing.splitlines() if line.strip().startswith("yard-bin-2")
    ]
    assert len(direct_sessions) == 3 and all("deactivated 2 events" in s for s in direct_sessions)

    assert "--force: the demo forces it because the period is still open" in summary
    documents = billing.split("Invoices as customers receive them")[1]
    company = documents.split("invoice CO-000001: nordlicht-facility")[1].split("\ninvoice ")[0]
    company = company.split("\ncredit note ")[0]
    assert {rate for rate, _ in assert_summary_adds_up(company)} == {"19", "7"}, company
    household = documents.split("weber-household, buyer")[1].split("\ninvoice ")[0]
    assert {rate for rate, _ in assert_summary_adds_up(household)} == {"19"}, household
    note = documents.split("credit note CO-CN-000001: nordlicht-facility")[1]
    assert "credits invoice CO-000001 line" in note
    assert assert_summary_adds_up(note)
    assert_documents(workdir, public_url=f"http://127.0.0.1:{port}")
    assert_result(result.stdout, workdir, company_gross=gross_of(company))


async def run_and_visit_the_console(command: list[str], url: str) -> "DemoRun":
    """Run the demo with --stay; once it says the console stays up, log in with the banner's
    login and read the overview's draft totals, then Ctrl-C (SIGINT) it."""
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None and process.stderr is not None
    errors = asyncio.create_task(process.stderr.read())
    stdout = ""
    try:
        async with asyncio.timeout(480):
            while "Ctrl-C to stop." not in stdout:
                line = await process.stdout.readline()
                if not line:
                    break
                stdout += line.decode()
            if "Ctrl-C to stop." in stdout:
                await visit_the_console(stdout, url)
                process.send_signal(signal.SIGINT)
            stdout += (await process.stdout.read()).decode()
            await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return DemoRun(process.returncode, stdout, (await errors).decode())


async def visit_the_console(stdout: str, url: str) -> None:
    """The banner's console login works, and the overview shows the demo's drafts."""
    login = re.search(r"console    (\S+)/console \(log in as '(\w+)', password '([^']+)'", stdout)
    assert login, stdout[:2000]
    assert login[1] == url
    async with httpx.AsyncClient(base_url=url) as client:
        moved = await console_login(client, login[2], login[3], origin=url)
        assert moved.status_code == 303 and moved.headers["location"] == "/console", moved.text
        overview = await client.get("/console")
    assert overview.status_code == 200
    assert "Draft total" in overview.text and "EUR" in overview.text, overview.text


async def console_login(
    client: httpx.AsyncClient, name: str, password: str, *, origin: str
) -> httpx.Response:
    """The login form posted as a browser posts it (its token, its cookie, the Origin)."""
    page = await client.get("/console/login")
    assert page.status_code == 200
    return await client.post(
        "/console/login",
        data={"csrf_token": hidden_csrf(page.text), "name": name, "password": password},
        headers={"Origin": origin},
    )


@dataclass(frozen=True)
class DemoRun:
    returncode: int
    stdout: str
    stderr: str


def gross_of(block: str) -> str:
    """The gross amount a document summary prints."""
    return re.search(r"^  gross (\S+) EUR", block, re.M)[1]  # type: ignore[index]


def assert_result(stdout: str, workdir: Path, *, company_gross: str) -> None:
    """The terminal ends with each account's invoice in a line and its files (which exist), then
    where the details, the collector's database and the logs are."""
    result = stdout.split("\nResult per account (invoices, sessions and VAT summaries: ")[1]
    assert result.startswith(f"{workdir / DETAILS}):"), result
    assert len(result.splitlines()) < 20, result
    blocks = account_blocks(result)
    company, household = blocks["nordlicht-facility"], blocks["weber-household"]
    assert company[0] == f"invoice CO-000001, finalized, gross {company_gross} EUR", company
    assert company[4].startswith("credit note CO-CN-000001, finalized, gross "), company
    assert household[0].startswith("invoice draft (no number yet), draft, gross "), household
    paths = {
        account: [Path(line.split()[-1]) for line in lines[1:] if " /" in line]
        for account, lines in blocks.items()
    }
    assert [path.name for path in paths["nordlicht-facility"]] == [
        "CO-000001.html",
        "CO-000001.pdf",
        "CO-000001-facturx.pdf",
        "CO-CN-000001.html",
        "CO-CN-000001.pdf",
        "CO-CN-000001-facturx.pdf",
    ]
    assert [path.name for path in paths["weber-household"]] == [
        "draft-weber-household.html",
        "draft-weber-household.pdf",
    ]
    assert all(path.is_file() for listed in paths.values() for path in listed), paths
    assert f"its database {workdir / 'cloud.sqlite'}" in result
    assert f"state kept in {workdir} until the next run, which empties it and says so" in result


def account_blocks(result: str) -> dict[str, list[str]]:
    """Account -> its lines in the result: the text after "account: ", then the indented ones."""
    blocks: dict[str, list[str]] = {}
    lines: list[str] = []
    for line in result.splitlines()[1:]:
        if re.match(r"^  \S+: ", line):
            account, first = line.strip().split(": ", 1)
            lines = blocks.setdefault(account, [first])
        elif line.startswith("    "):
            lines.append(line.strip())
        else:
            lines = []
    return blocks


def test_a_new_workdir_is_made_and_marked_without_a_notice(tmp_path: Path) -> None:
    directory, notice = fresh_workdir(tmp_path / "demo-data")
    assert notice is None
    assert (directory / MARKER).is_file()


def test_an_earlier_demo_workdir_without_marker_is_emptied_with_a_notice(tmp_path: Path) -> None:
    """A workdir from before the marker existed: its config and cloud database say it is one."""
    workdir = tmp_path / "demo-data"
    workdir.mkdir()
    (workdir / "site.toml").write_text("[gateway]\n")
    (workdir / "edge").mkdir()
    directory, notice = fresh_workdir(workdir)
    assert notice == (
        f"{workdir}/ from an earlier run was reset: each run starts over (a new gateway, "
        "fresh counters, this month billed once); copy it elsewhere first to keep it"
    )
    assert sorted(path.name for path in directory.iterdir()) == [MARKER]


def test_the_demo_refuses_a_workdir_that_is_not_an_earlier_runs(tmp_path: Path) -> None:
    workdir = tmp_path / "photos"
    workdir.mkdir()
    (workdir / "holiday.jpg").write_bytes(b"\xff\xd8")
    command = [str(BIN / "tollgate-sim"), "demo", "--workdir", str(workdir), "--duration", "1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr == (
        f"tollgate-sim demo: --workdir {workdir} is not empty and holds no earlier demo run "
        f"(no {MARKER}, site.toml or cloud.sqlite): the demo empties its workdir first, so "
        "give it a new or empty directory\n"
    )
    assert result.stdout == ""
    assert sorted(path.name for path in workdir.iterdir()) == ["holiday.jpg"]


@pytest.mark.parametrize("verbose", [False, True])
def test_details_go_to_the_file_and_to_stdout_only_when_verbose(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], verbose: bool
) -> None:
    details = DetailLog(tmp_path / DETAILS, echo=verbose)
    details.write("  sessions behind it:")
    details.write("    camera-1/front  12:00:00 UTC  2.0 s  deactivated 2 events")
    expected = (
        "  sessions behind it:\n    camera-1/front  12:00:00 UTC  2.0 s  deactivated 2 events\n"
    )
    assert (tmp_path / DETAILS).read_text() == expected
    assert capsys.readouterr().out == (expected if verbose else "")


def assert_summary_adds_up(block: str) -> list[tuple[str, Decimal]]:
    """Each printed VAT line is its taxable amount x rate, rounded half-up once (EN 16931
    BR-CO-17), and gross = net + the VAT lines (BR-CO-15); the (rate, tax) of each VAT line."""
    net = Decimal(re.search(r"^  net (\S+) EUR$", block, re.M)[1])  # type: ignore[index]
    gross = Decimal(re.search(r"^  gross (\S+) EUR", block, re.M)[1])  # type: ignore[index]
    vat = re.findall(r"^  VAT S (\d+)% on (\S+): (\S+) EUR$", block, re.M)
    assert vat, block
    for rate, taxable, tax in vat:
        expected = (Decimal(taxable) * Decimal(rate) / 100).quantize(Decimal("0.01"), ROUND_HALF_UP)
        assert Decimal(tax) == expected, block
    assert sum(Decimal(taxable) for _, taxable, _ in vat) == net, block
    assert net + sum(Decimal(tax) for _, _, tax in vat) == gross, block
    return [(rate, Decimal(tax)) for rate, _, tax in vat]


def assert_documents(workdir: Path, *, public_url: str) -> None:
    """The files a customer receives: HTML linking absolutely to the collector's public URL,
    PDFs, and Factur-X PDFs whose embedded EN 16931 XML validates and names both parties."""
    html = (workdir / "CO-000001.html").read_text()
    assert "Tollgate Demo Metering GmbH" in html and f'href="{public_url}/v1/' in html
    for name in ("CO-000001.pdf", "draft-weber-household.pdf", "CO-CN-000001.pdf"):
        assert (workdir / name).read_bytes().startswith(b"%PDF-"), name
    for name, type_code in (("CO-000001-facturx.pdf", "380"), ("CO-CN-000001-facturx.pdf", "381")):
        _, xml = facturx.get_xml_from_pdf((workdir / name).read_bytes(), check_xsd=False)
        assert facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931"), name
        text = xml.decode()
        assert f"<ram:TypeCode>{type_code}</ram:TypeCode>" in text, name
        assert "DE136695976" in text and "DE123456788" in text, name  # seller, buyer VAT ids


def assert_total_is_sum_of_lines(block: str) -> None:
    """The printed total of an invoice equals the sum of its printed line amounts."""
    amounts, total = [], None
    for line in block.splitlines():
        words = line.split()
        if words and words[0].isdigit() and words[1] in {"base_fee", "usage", "minimum"}:
            amounts.append(Decimal(words[-1]))
        elif words[:1] == ["total"]:
            total = Decimal(words[1])
    assert amounts and total is not None, block
    assert sum(amounts) == total, block


@pytest.mark.parametrize(
    ("variables", "flags"),
    [
        ([], []),
        (["VERBOSE=1"], ["--verbose"]),
        (["DURATION=5", "VERBOSE=1"], ["--duration", "5", "--verbose"]),
    ],
)
def test_make_demo_passes_its_variables_to_the_demo(variables: list[str], flags: list[str]) -> None:
    """`make demo VERBOSE=1` prints the drafts and sessions on the terminal too (make -n: the
    command make would run, without running it)."""
    root = Path(__file__).resolve().parents[2]
    printed = subprocess.run(
        ["make", "-s", "-n", "-C", str(root), "demo", *variables],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    demo_line = next(line for line in printed.splitlines() if "tollgate-sim demo" in line)
    assert demo_line.split("tollgate-sim demo")[1].split() == flags
