"""`make demo` runs `tollgate-sim demo`: the whole site in a box must balance its books.

Run as the command itself (a child process), with a free collector port and the embedded MQTT
broker, for a short duration: every source (Modbus panels, BLE locks, MQTT devices) must end
"ok" against what the simulators really did. Then the invoices a customer receives: the company's
(two VAT rates, finalized with --force), a credit note for one of its lines, their HTML, PDF and
Factur-X files in the workdir, the e-invoices valid against the Factur-X EN 16931 XSD.
"""

import asyncio
import re
import subprocess
import sys
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import facturx

from tests.support.waiting import free_port

BIN = Path(sys.executable).parent


async def test_the_demo_balances_every_source(tmp_path: Path) -> None:
    port = free_port()
    workdir = tmp_path / "demo"
    command = [
        str(BIN / "tollgate-sim"),
        "demo",
        "--duration",
        "10",
        "--workdir",
        str(workdir),
        "--cloud-port",
        str(port),
    ]
    result = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=480
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
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

    billing = summary.split("Billing period ")[1]
    assert "2 drafted, 0 updated" in billing
    for account in ("weber-household", "nordlicht-facility"):
        block = billing.split(f"account {account}, period")[1].split("sessions behind it:")[0]
        assert_total_is_sum_of_lines(block)
    sessions = billing.split("sessions behind it:")[1:]
    assert all("deactivated" in listed for listed in sessions)
    direct_sessions = [
        line for line in billing.splitlines() if line.strip().startswith("yard-bin-2")
    ]
    assert len(direct_sessions) == 3 and all("deactivated 2 events" in s for s in direct_sessions)

    documents = billing.split("Invoices as customers receive them")[1]
    assert "--force: the demo forces it because the period is still open" in documents
    company = documents.split("invoice CO-000001: nordlicht-facility")[1].split("\ninvoice ")[0]
    company = company.split("tollgate-cloud invoice credit")[0]
    assert {rate for rate, _ in assert_summary_adds_up(company)} == {"19", "7"}, company
    household = documents.split("weber-household, buyer")[1].split("\ninvoice ")[0]
    assert {rate for rate, _ in assert_summary_adds_up(household)} == {"19"}, household
    note = documents.split("credit note CO-CN-000001: nordlicht-facility")[1]
    assert "credits invoice CO-000001 line" in note
    assert assert_summary_adds_up(note)
    assert_documents(workdir, public_url=f"http://127.0.0.1:{port}")


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
