from tests.cloud.conftest import GATEWAY, make_events, post, counts

async def test_smoke(client, db, gateway_key):
    r = await post(client, make_events(1, 10), gateway_key)
    print(r.status_code, r.json())
    r = await post(client, make_events(1, 10), gateway_key)
    print(r.status_code, r.json())
    print(await counts(db))
    r = await client.get("/v1/events", params={"limit": 3})
    print(r.json())
    r = await client.get(f"/v1/gateways/{GATEWAY}")
    print(r.json())
    r = await client.get("/healthz")
    print(r.json())
