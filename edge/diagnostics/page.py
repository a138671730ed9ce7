"""The single HTML page and the login form: inline CSS and script, no CDN, no build step.

The gateway may have no internet at all, so nothing is fetched from elsewhere: page.css and
page.js sit next to this module and are inlined into the response. The script only
ever sets `textContent` (never HTML) because device values and event names come from devices.
The Content-Security-Policy allows only the inline blocks carrying this response's nonce.
"""

from html import escape
from importlib.resources import files

_STYLE = (files("edge.diagnostics") / "page.css").read_text(encoding="utf-8")
_SCRIPT = (files("edge.diagnostics") / "page.js").read_text(encoding="utf-8")


def main_page(*, nonce: str, gateway_id: str) -> str:
    """The diagnostics page; the script fills it from /api/status and /api/events."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Tollgate gateway {escape(gateway_id)}</title>
<style nonce="{nonce}">{_STYLE}</style></head>
<body>
<header><h1>Tollgate gateway <span class="mono">{escape(gateway_id)}</span>
 <span class="badge" id="state">&hellip;</span></h1>
 <span id="updated" class="result"></span>
 <button class="secondary" id="logout">Log out</button></header>
<main>
<div id="alarms"></div>
<div class="grid">
 <section><h2>Identity &amp; enrollment</h2><dl id="identity"></dl></section>
 <section><h2>Cloud link</h2><dl id="link"></dl></section>
 <section><h2>Outbox</h2><dl id="outbox"></dl><div class="bar"><div id="outbox-bar"></div></div>
 </section>
 <section><h2>Clock</h2><dl id="clock"></dl></section>
</div>
<section><h2>Devices</h2>
<table><thead><tr><th>Device</th><th>Driver</th><th>Address</th><th>State</th>
<th>Last reading</th><th>Last answer</th><th>Last event</th><th>Errors</th><th></th></tr></thead>
<tbody id="devices"></tbody></table></section>
<section><h2>Actions</h2>
<button id="flush">Flush now</button>
<a class="button" id="bundle" href="/api/support-bundle">Download support bundle</a>
<div class="result" id="flush-result"></div></section>
<section><h2>Live events <span class="badge" id="live">connecting</span></h2>
<div id="events"><table><thead><tr><th>Time</th><th>Seq</th><th>Device</th><th>Event</th>
<th>Kind</th><th>Quantity</th></tr></thead><tbody id="events-body"></tbody></table></div>
</section>
</main>
<script nonce="{nonce}">{_SCRIPT}</script>
</body></html>
"""


def login_page(*, nonce: str, error: str = "") -> str:
    """The login form (also the body of 401, 429 and 503 answers to a browser)."""
    message = f'<p class="error" id="error">{escape(error)}</p>' if error else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Tollgate gateway: technician login</title>
<style nonce="{nonce}">{_STYLE}</style></head>
<body>
<form class="login" method="post" action="/login">
<h2>Tollgate gateway</h2>
<p>Technician login</p>{message}
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required
 autofocus>
<button type="submit">Log in</button>
</form>
</body></html>
"""
