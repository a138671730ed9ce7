"""Console sessions: the cookie, CSRF, the login rate limit, logout, idle and absolute expiry."""

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from cloud.auth.service import hash_key
from cloud.console.logins import ConsoleSettings, parse_duration
from cloud.console.models import ConsoleSession, ConsoleUser
from cloud.console.users import UserNotFound, reset_password, set_disabled
from cloud.db import Database
from cloud.errors import InvalidSettings
from tests.cloud.conftest import http_client
from tests.cloud.console.helpers import (
    ORIGIN,
    PASSWORDS,
    add_users,
    hidden_csrf,
    logged_in,
    login,
)


def client_at(app: FastAPI, address: str, *, scheme: str = "http") -> httpx.AsyncClient:
    """A client whose requests come from `address` (the limiter counts per address)."""
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url=f"{scheme}://collector")


async def test_a_login_sets_a_strict_http_only_cookie_whose_token_is_stored_hashed(
    app: FastAPI, db: Database
) -> None:
    await add_users(db)
    async with http_client(app) as client:
        moved = await login(client, "viewer", PASSWORDS["viewer"])
        token = client.cookies["tollgate_console"]

    cookie = next(
        value
        for name, value in moved.headers.multi_items()
        if value.startswith("tollgate_console=")
    )
    assert moved.status_code == 303 and moved.headers["location"] == "/console"
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain http here; see the https test
    async with db.transaction() as session:
        stored = list(await session.scalars(select(ConsoleSession.token_hash)))
    assert stored == [hash_key(token)] and token not in stored


async def test_over_https_the_cookie_is_secure(app: FastAPI, db: Database) -> None:
    await add_users(db)
    async with client_at(app, "10.0.0.9", scheme="https") as client:
        page = await client.get("/console/login")
        moved = await client.post(
            "/console/login",
            data={"csrf_token": hidden_csrf(page.text), "name": "viewer", "password": "x" * 20},
            headers={"Origin": "https://collector"},
        )
        assert moved.headers["location"] == "/console/login?error=1"
        moved = await client.post(
            "/console/login",
            data={
                "csrf_token": hidden_csrf(page.text),
                "name": "viewer",
                "password": PASSWORDS["viewer"],
            },
            headers={"Origin": "https://collector"},
        )

    assert "Secure" in moved.headers["set-cookie"]
    assert "Secure" in page.headers["set-cookie"]  # the login form's token too


async def test_unknown_user_and_wrong_password_get_the_same_answer(
    app: FastAPI, db: Database
) -> None:
    await add_users(db)
    async with http_client(app) as client:
        wrong = await login(client, "viewer", "not-the-password-at-all")
        unknown = await login(client, "nobody", "not-the-password-at-all")
        page = await client.get(wrong.headers["location"])

    assert (wrong.status_code, wrong.headers["location"]) == (303, "/console/login?error=1")
    assert (unknown.status_code, unknown.headers["location"]) == (303, "/console/login?error=1")
    assert wrong.content == unknown.content
    assert "Wrong name or password." in page.text
    assert "tollgate_console" not in {cookie.name for cookie in client.cookies.jar}


async def test_a_disabled_user_cannot_log_in(app: FastAPI, db: Database) -> None:
    await add_users(db)
    async with db.transaction(write=True) as session:
        await session.execute(
            update(ConsoleUser).where(ConsoleUser.name == "billing").values(disabled=True)
        )
    async with http_client(app) as client:
        moved = await login(client, "billing", PASSWORDS["billing"])

    assert moved.headers["location"] == "/console/login?error=1"


async def test_five_failures_a_minute_then_429_per_address_and_per_name(
    app: FastAPI, db: Database
) -> None:
    await add_users(db)
    async with client_at(app, "10.0.0.1") as client:
        for n in range(5):
            assert (await login(client, f"guess{n}", "wrong-password-123")).status_code == 303
        limited = await login(client, "viewer", PASSWORDS["viewer"])  # right, but too late
    async with client_at(app, "10.0.0.2") as other, client_at(app, "10.0.0.3") as third:
        for _ in range(5):
            await login(other, "billing", "wrong-password-123")
        same_name = await login(third, "billing", PASSWORDS["billing"])
        other_name = await login(third, "viewer", PASSWORDS["viewer"])

    assert limited.status_code == 429
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert limited.json()["error"]["code"] == "too_many_logins"
    assert same_name.status_code == 429  # that name, from another address
    assert other_name.status_code == 303 and other_name.headers["location"] == "/console"


async def test_fields_are_bounded_before_any_password_is_checked(
    app: FastAPI, db: Database
) -> None:
    await add_users(db)
    async with http_client(app) as client:
        long_password = await login(client, "viewer", "x" * 257)
        long_name = await login(client, "v" * 65, "whatever-password")
        page = await client.get("/console/login")
        huge = await client.post(
            "/console/login",
            content=b"name=" + b"a" * 5000,
            headers={**ORIGIN, "Content-Type": "application/x-www-form-urlencoded"},
        )
        not_a_form = await client.post(
            "/console/login", json={"csrf_token": hidden_csrf(page.text)}, headers=ORIGIN
        )

    assert long_password.status_code == 422
    assert long_password.json()["error"]["detail"] == {"field": "password", "max_length": 256}
    assert long_name.status_code == 422
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "body_too_large"
    assert not_a_form.status_code == 422


async def test_forms_need_their_token_and_the_same_origin(app: FastAPI, db: Database) -> None:
    await add_users(db)
    async with http_client(app) as client:
        page = await client.get("/console/login")
        token = hidden_csrf(page.text)
        fields = {"csrf_token": token, "name": "viewer", "password": PASSWORDS["viewer"]}
        elsewhere = await client.post(
            "/console/login", data=fields, headers={"Origin": "https://evil.example"}
        )
        no_origin = await client.post("/console/login", data=fields)
        by_referer = await client.post(
            "/console/login", data=fields, headers={"Referer": "http://collector/console/login"}
        )
        assert by_referer.status_code == 303 and by_referer.headers["location"] == "/console"
        csrf = hidden_csrf((await client.get("/console")).text)
        no_token = await client.post("/console/logout", data={}, headers=ORIGIN)
        wrong_token = await client.post(
            "/console/logout", data={"csrf_token": token}, headers=ORIGIN
        )
        cross_site = await client.post(
            "/console/logout", data={"csrf_token": csrf}, headers={"Origin": "http://evil"}
        )
        still_in = await client.get("/console")
    async with http_client(app) as stranger:  # a form token without its cookie
        no_cookie = await stranger.post("/console/login", data=fields, headers=ORIGIN)

    for refused in (elsewhere, no_origin, cross_site):
        assert refused.status_code == 403
        assert refused.json()["error"]["detail"]["missing"] == "same_origin"
    for refused in (no_token, wrong_token, no_cookie):
        assert refused.status_code == 403
        assert refused.json()["error"]["detail"] == {"missing": "csrf_token"}
    assert still_in.status_code == 200


async def test_logout_ends_the_session_for_good(app: FastAPI, db: Database) -> None:
    await add_users(db)
    async with http_client(app) as client:
        csrf = await logged_in(client, "admin")
        token = client.cookies["tollgate_console"]
        out = await client.post("/console/logout", data={"csrf_token": csrf}, headers=ORIGIN)
        after = await client.get("/console")
        client.cookies.set("tollgate_console", token, domain="collector", path="/console")
        replayed = await client.get("/console")

    assert (out.status_code, out.headers["location"]) == (303, "/console/login?ended=1")
    assert after.status_code == 303 and after.headers["location"] == "/console/login"
    assert replayed.status_code == 303
    async with db.transaction() as session:
        assert list(await session.scalars(select(ConsoleSession))) == []


@pytest.mark.parametrize("column", ["last_seen_at", "expires_at"], ids=["idle", "absolute"])
async def test_a_session_expires_when_idle_and_at_its_absolute_end(
    app: FastAPI, db: Database, column: str
) -> None:
    await add_users(db)
    async with http_client(app) as client:
        await logged_in(client, "viewer")
        # idle: last seen 30 minutes ago (the default idle time); absolute: its end is now
        back = timedelta(minutes=30) if column == "last_seen_at" else timedelta(0)
        async with db.transaction(write=True) as session:
            await session.execute(update(ConsoleSession).values({column: datetime.now(UTC) - back}))
        expired = await client.get("/console")

    assert expired.status_code == 303 and expired.headers["location"] == "/console/login"
    async with db.transaction() as session:
        assert list(await session.scalars(select(ConsoleSession))) == []  # and it is gone


async def test_a_password_reset_ends_the_users_sessions(app: FastAPI, db: Database) -> None:
    await add_users(db)
    async with http_client(app) as viewer, http_client(app) as admin:
        await logged_in(viewer, "viewer")
        await logged_in(admin, "admin")
        async with db.transaction(write=True) as session:
            ended = await reset_password(session=session, name="viewer", password="n" * 12)
        viewer_after = await viewer.get("/console")
        admin_after = await admin.get("/console")
        old = await login(viewer, "viewer", PASSWORDS["viewer"])
        new = await login(viewer, "viewer", "n" * 12)

    assert ended == 1
    assert viewer_after.status_code == 303 and admin_after.status_code == 200
    assert old.headers["location"] == "/console/login?error=1"
    assert new.headers["location"] == "/console"


async def test_disabling_ends_the_sessions_and_enabling_lets_the_user_in_again(
    app: FastAPI, db: Database
) -> None:
    await add_users(db)
    async with http_client(app) as billing, http_client(app) as other:
        await logged_in(billing, "billing")
        async with db.transaction(write=True) as session:
            ended = await set_disabled(session=session, name="billing", disabled=True)
        after = await billing.get("/console")
        refused = await login(other, "billing", PASSWORDS["billing"])
        async with db.transaction(write=True) as session:
            await set_disabled(session=session, name="billing", disabled=False)
        admitted = await login(other, "billing", PASSWORDS["billing"])
        async with db.transaction(write=True) as session:
            with pytest.raises(UserNotFound):
                await set_disabled(session=session, name="nobody", disabled=True)

    assert ended == 1 and after.status_code == 303
    assert refused.headers["location"] == "/console/login?error=1"
    assert admitted.headers["location"] == "/console"


def test_the_idle_time_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOLLGATE_CONSOLE_IDLE", "5m")
    assert ConsoleSettings.load().idle == timedelta(minutes=5)
    assert ConsoleSettings.load(public_url="https://bill.example").secure_cookies
    assert parse_duration("90", name="X") == timedelta(seconds=90)
    for bad in ("0", "13h", "ten", "5 m"):
        with pytest.raises(InvalidSettings):
            parse_duration(bad, name="X")
