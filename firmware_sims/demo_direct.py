"""The demo's direct source: a waste-collection platform that posts CloudEvents for a bin and
hands over a CSV of legacy pours, both billed to the company like the gateway's events.

The CloudEvents are built by hand here (the JSON event format is small); the tests use the
official SDK as the client.
"""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from firmware_sims.processes import CollectorProcess

SOURCE_ID = "yard-bins"
CE_SOURCE = "urn:demo:yard-bins"
DEVICE = "yard-bin-2"
MAPPING = Path(__file__).with_name("demo_source.toml")
CLOUDEVENTS_BATCH = "application/cloudevents-batch+json"


async def register_source(collector: CollectorProcess) -> str:
    """Create the source from its mapping; its ingest key (printed once by the CLI)."""
    await collector.admin("source", "add", SOURCE_ID, "--mapping", str(MAPPING))
    return (await collector.admin("source", "key", SOURCE_ID, "--name", "demo platform")).strip()


def pour_events(now: datetime) -> list[dict[str, object]]:
    """Two lid openings, each closed by a weighed pour, in the last minute."""
    events: list[dict[str, object]] = []
    for number, (seconds_ago, kilograms) in enumerate(((50, "12.5"), (25, "8.0")), start=1):
        opened = now - timedelta(seconds=seconds_ago)
        for kind, at, data in (
            ("opened", opened, None),
            ("pour", opened + timedelta(seconds=6), {"weight": {"kg": kilograms}}),
        ):
            event: dict[str, object] = {
                "specversion": "1.0",
                "id": f"demo-{number}-{kind}",
                "source": CE_SOURCE,
                "type": f"com.demo.bin.{kind}",
                "subject": DEVICE,
                "time": at.isoformat(),
            }
            if data is not None:
                event["data"] = data
            events.append(event)
    return events


def legacy_csv(now: datetime) -> str:
    """The platform's older export: one pour a few minutes ago, with its ticket number."""
    opened = (now - timedelta(minutes=3)).replace(microsecond=0)
    poured = opened + timedelta(seconds=8)
    return (
        "bin,emptied_at,event,ticket,weight.kg\n"
        f"{DEVICE},{opened.isoformat()},com.demo.bin.opened,T-1001-A,\n"
        f"{DEVICE},{poured.isoformat()},com.demo.bin.pour,T-1001-B,21.25\n"
    )


async def feed_direct_source(
    collector: CollectorProcess, client: httpx.AsyncClient, *, key: str, workdir: Path
) -> None:
    """Post the CloudEvents (twice: the second time stores nothing) and import the CSV twice."""
    now = datetime.now(UTC)
    body = json.dumps(pour_events(now)).encode()
    headers = {"content-type": CLOUDEVENTS_BATCH, "authorization": f"Bearer {key}"}
    print(f"\nDirect source {SOURCE_ID}: POST /v1/events ({CLOUDEVENTS_BATCH})")
    for attempt in ("sent", "re-sent"):
        response = await client.post("/v1/events", content=body, headers=headers)
        response.raise_for_status()
        receipt = response.json()
        print(
            f"  {attempt}: {receipt['received']} events, stored {receipt['stored']}, "
            f"{receipt['duplicates']} already stored, {len(receipt['rejected'])} rejected"
        )
    export = workdir / "yard-bins-export.csv"
    export.write_text(legacy_csv(now), encoding="utf-8")
    print(f"Direct source {SOURCE_ID}: tollgate-cloud import {export.name} (twice)")
    for _ in range(2):
        report = await collector.admin("import", str(export), "--source", SOURCE_ID)
        print("  " + report.strip())
