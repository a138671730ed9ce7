"""What re-computing a combined-session line needs, read from the invoice's frozen catalog.

A usage line whose session metric names a combined rule (`cloud.catalog.combined_rules`) was
measured over the rule's combined sessions; its evidence rows already name every member piece.
This adds the rule itself and each member device's site, as the invoice froze them when it was
rated (today's catalog for an invoice rated before it froze them), so `cloud.invoices.verify`
can combine the pieces again and compare the quantity.
"""

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.catalog.combined_rules import list_combined_rules, rule_document
from cloud.catalog.models import Device
from cloud.invoices.models import Invoice
from cloud.usage.loader import chunks


async def combined_evidence(
    *,
    session: AsyncSession,
    invoice_id: int,
    metric: dict[str, Any] | None,
    device_ids: Iterable[str],
) -> dict[str, Any]:
    """{"combined_rule": {id, scope, combine, members}, "device_sites": {device: site}} or {}."""
    if metric is None or metric.get("source") != "sessions":
        return {}
    frozen = await session.scalar(select(Invoice.rated_catalog).where(Invoice.id == invoice_id))
    frozen = frozen or {}
    rules = frozen.get("combined")
    if rules is None:
        rules = {row.id: rule_document(row) for row in await list_combined_rules(session=session)}
    named = [profile for profile in metric.get("profiles", []) if profile in rules]
    if not named:
        return {}
    wanted = sorted(set(device_ids))
    sites = frozen.get("sites")
    if sites is None:
        sites = await _live_sites(session=session, device_ids=wanted)
    return {
        "combined_rule": {"id": named[0], **rules[named[0]]},
        "device_sites": {device: sites.get(device) for device in wanted},
    }


async def _live_sites(*, session: AsyncSession, device_ids: list[str]) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for chunk in chunks(device_ids):
        query = select(Device.id, Device.site_id).where(Device.id.in_(chunk))
        found.update((await session.execute(query)).all())
    return found
