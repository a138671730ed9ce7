"""Console test helpers: users in the app's database, and a browser-like login over ASGI."""

import re
from datetime import datetime, timedelta
from decimal import Decimal

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.catalog.models import Account
from cloud.console.users import add_user
from cloud.db import Database
from cloud.fleet.models import GatewayTwin
from cloud.incidents.models import Incident
from cloud.invoices.models import Invoice
from cloud.invoices.run_queue import InvoiceRun
from tests.cloud.conftest import register

ORIGIN = {"Origin": "http://collector"}  # the test client's base URL (tests/cloud/conftest.py)
PASSWORDS = {
    "viewer": "viewer-password-0001",
    "billing": "billing-password-0002",
    "admin": "admin-password-00003",
}


async def add_users(db: Database) -> None:
    """One user per role, named after it, with its password from PASSWORDS."""
    async with db.transaction(write=True) as session:
        for role, password in PASSWORDS.items():
            await add_user(session=session, name=role, role=role, password=password)


def hidden_csrf(html: str) -> str:
    """The `csrf_token` hidden field of a page's (first) form."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html
    return found[1]


async def login(client: httpx.AsyncClient, name: str, password: str) -> httpx.Response:
    """Open the login page, then post its form as a browser would (Origin, token, cookie)."""
    page = await client.get("/console/login")
    assert page.status_code == 200
    return await client.post(
        "/console/login",
        data={"csrf_token": hidden_csrf(page.text), "name": name, "password": password},
        headers=ORIGIN,
    )


async def logged_in(client: httpx.AsyncClient, role: str) -> str:
    """Log `client` in as the user of `role`; the CSRF token of its session's forms."""
    moved = await login(client, role, PASSWORDS[role])
    assert moved.status_code == 303 and moved.headers["location"] == "/console", moved.text
    overview = await client.get("/console")
    assert overview.status_code == 200
    return hidden_csrf(overview.text)


QUIET_GATEWAY = "site-099-gw9"  # sends nothing: its twin stays offline, its incidents open


async def seed_overview(db: Database, *, now: datetime) -> None:
    """What the overview counts, besides events: three drafts of this month in two currencies
    (plus a finalized invoice and an older draft it must not add), two open incidents (plus an
    acknowledged and a resolved one), one gateway offline, and a finished invoice run."""
    await register(db, QUIET_GATEWAY, Ed25519PrivateKey.generate())
    gateway_id = QUIET_GATEWAY
    period = now.strftime("%Y-%m")
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    async with db.transaction(write=True) as session:
        accounts = (("acme", "EUR"), ("bolt", "EUR"), ("zuri", "CHF"), ("yale", "CHF"))
        for account, currency in accounts:
            session.add(
                Account(
                    id=account,
                    name=account,
                    kind="company",
                    currency=currency,
                    time_zone="UTC",
                    invoice_series="INV",
                    created_at=now,
                )
            )
        await session.flush()
        for account, currency, status, total, month in (
            ("acme", "EUR", "draft", "12.50", period),
            ("bolt", "EUR", "draft", "0.25", period),
            ("zuri", "CHF", "draft", "7.10", period),
            ("yale", "CHF", "finalized", "100.00", period),
            ("acme", "EUR", "draft", "999.00", "2020-01"),
        ):
            session.add(
                Invoice(
                    account_id=account,
                    period=month,
                    period_start=start,
                    period_end=start + timedelta(days=28),
                    currency=currency,
                    status=status,
                    series="INV",
                    total=Decimal(total),
                    computed_at=now,
                    grace_until=now,
                )
            )
        for state in ("open", "open", "acknowledged", "resolved"):
            session.add(
                Incident(
                    gateway_id=gateway_id,
                    kind="low_battery",
                    device_id="panel-9",
                    state=state,
                    detail="test",
                    first_seen=now,
                    last_seen=now,
                    count=1,
                )
            )
        session.add(GatewayTwin(gateway_id=gateway_id, status="offline", status_since=now))
        session.add(
            InvoiceRun(
                period=period,
                now=now,
                grace_seconds=0,
                state="finished",
                workers=1,
                chunks=0,
                accounts=2,
                started_at=now,
                finished_at=now,
                started_by="tests:1",
            )
        )
