"""Cloud fixtures: a migrated collector app on SQLite and PostgreSQL, driven over ASGI."""

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from sqlalchemy import func, select

from cloud.app import create_app
from cloud.auth.models import ApiKey
from cloud.auth.service import hash_key
from cloud.db import Database
from cloud.gateways.service import register_gateway
from cloud.incidents.models import Incident
from cloud.ingest.models import ReceivedBatch, StoredEvent
from cloud.schema import migrate
from cloud.settings import Settings
from shared.events import UsageEvent
from shared.signing import public_key_pem
from tests.support.batches import batch_body, chain_events, draft

GATEWAY = "site-042-gw1"
# A viewer key every test app holds (test data only: its secret is known to the tests), for the
# reads that check what was stored; the routes' own access is tested with issued keys.
READER_SECRET = "tg_test-reader-key-of-the-test-suite-0000000000"
READER = {"Authorization": f"Bearer {READER_SECRET}"}
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="session")
def gateway_key() -> Ed25519PrivateKey:
    """The key the registered test gateway signs with."""
    return Ed25519PrivateKey.generate()


@contextlib.asynccontextmanager
async def running_app(settings: Settings, key: Ed25519PrivateKey) -> AsyncIterator[FastAPI]:
    """A collector app with its lifespan entered, its database migrated and GATEWAY registered."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        db: Database = application.state.db
        await migrate(db.engine)
        await register(db, GATEWAY, key)
        await add_reader_key(db)
        yield application


@pytest.fixture
async def app(db_url: str, gateway_key: Ed25519PrivateKey) -> AsyncIterator[FastAPI]:
    """A running collector on a fresh database, default limits."""
    async with running_app(Settings(db_url=db_url), gateway_key) as application:
        yield application


def http_client(app: FastAPI) -> httpx.AsyncClient:
    """An HTTP client talking to `app` through ASGI (use as an async context manager)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://collector")


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app through ASGI."""
    async with http_client(app) as http:
        yield http


@pytest.fixture
def db(app: FastAPI) -> Database:
    """The app's own database, for asserting what was stored."""
    database: Database = app.state.db
    return database


async def add_reader_key(db: Database) -> None:
    """Store the suite's viewer key (READER) in the app's database."""
    async with db.transaction(write=True) as session:
        session.add(
            ApiKey(
                name="test reader",
                prefix=READER_SECRET[:11],
                key_hash=hash_key(READER_SECRET),
                scope="viewer",
                created_at=datetime.now(UTC),
            )
        )


async def register(db: Database, gateway_id: str, key: Ed25519PrivateKey) -> None:
    """Register a gateway with the public half of `key`."""
    pem = public_key_pem(key.public_key()).encode("ascii")
    async with db.transaction() as session:
        await register_gateway(session=session, gateway_id=gateway_id, public_key=pem)


def make_events(
    first: int,
    last: int,
    *,
    gateway_id: str = GATEWAY,
    prev_hash: str | None = None,
    device_id: str = "panel-1",
) -> list[UsageEvent]:
    """Events `first..last` of a gateway's chain (the real chain from seq 1 unless `prev_hash`)."""
    if prev_hash is None:
        full = chain_events(
            [draft(n, device_id=device_id) for n in range(1, last + 1)], gateway_id=gateway_id
        )
        return full[first - 1 :]
    drafts = [draft(n, device_id=device_id) for n in range(first, last + 1)]
    return chain_events(drafts, gateway_id=gateway_id, first_seq=first, prev_hash=prev_hash)


async def post(
    client: httpx.AsyncClient,
    events: Sequence[UsageEvent],
    key: Ed25519PrivateKey,
    **kwargs: object,
) -> httpx.Response:
    """POST a signed batch of `events` (as the forwarder does: `application/json`)."""
    return await client.post("/v1/batches", content=batch_body(events, key), headers=JSON, **kwargs)


async def counts(db: Database) -> dict[str, int]:
    """Rows in the batches, events and incidents tables."""
    result = {}
    async with db.transaction() as session:
        for name, model in (
            ("batches", ReceivedBatch),
            ("events", StoredEvent),
            ("incidents", Incident),
        ):
            result[name] = await session.scalar(select(func.count()).select_from(model)) or 0
    return result


async def incident_kinds(db: Database) -> list[str]:
    """The kinds of all incidents, in the order they were recorded."""
    async with db.transaction() as session:
        return list(await session.scalars(select(Incident.kind).order_by(Incident.id)))


def error_code(response: httpx.Response) -> str:
    """The `error.code` of an error answer."""
    code: str = response.json()["error"]["code"]
    return code
