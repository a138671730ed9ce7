"""The gateway's local diagnostics page: what a field technician opens in a browser on the LAN.

Everything is served by the agent itself (one more task in its TaskGroup), works with no internet
(inline CSS and script, no CDN, no build step) and refuses anonymous requests: a technician
password (slow hash, `edge.diagnostics.password`) opens a session cookie.

    server.py   binds [diagnostics] listen, runs uvicorn inside the agent, stops with it
    app.py      the Starlette routes: page, /api/status, /api/events (SSE), poll now, flush, bundle
    auth.py     sessions, login rate limit, CSRF header check
    tail.py     the live tail of committed events, fanned out to bounded per-client queues
    page.py     the single HTML page
    bundle.py   the support bundle (logs, redacted config, health)
"""
