const CSRF = {"X-Tollgate-CSRF": "1"};
const $ = (id) => document.getElementById(id);
const rows = new Map();
const lastEvent = new Map();
function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function pairs(id, list) {
  const dl = $(id); dl.replaceChildren();
  for (const [k, v] of list) {
    const dd = v instanceof Node ? el("dd") : el("dd", v === null || v === undefined ? "\u2014" : v);
    if (v instanceof Node) dd.append(v);
    dl.append(el("dt", k), dd);
  }
}
function when(iso) { return iso ? new Date(iso).toLocaleString() : "never"; }
// Ages from the gateway's own clock at the snapshot (`written_at`), not the browser's.
function ago(iso, now) {
  if (!iso) return "never";
  return dur(Math.max(0, (new Date(now) - new Date(iso)) / 1000)) + " ago";
}
// A URL broken only between its parts ("https://", "collector", ".example", ":8443", "/v1"), never
// inside one: the dd breaks anywhere, which cut "8443" into "84" / "43" on a narrow card.
function url(text) {
  const span = el("span", null, "url");
  const scheme = (/^[a-z][a-z0-9+.-]*:\/\//i.exec(text) || [""])[0];
  const parts = [scheme, ...String(text).slice(scheme.length).split(/(?=[.:/?#])/)].filter(Boolean);
  parts.forEach((part, i) => { if (i) span.append(el("wbr")); span.append(el("span", part)); });
  return span;
}
function dur(s) {
  if (s === null || s === undefined) return "\u2014";
  if (s < 90) return Math.round(s) + " s"; if (s < 5400) return Math.round(s / 60) + " min";
  if (s < 172800) return (s / 3600).toFixed(1) + " h";
  return (s / 86400).toFixed(1) + " d";
}
function mb(n) { return (n / 1048576).toFixed(1) + " MB"; }
function values(v) {
  const keys = Object.keys(v || {});
  return keys.length ? keys.map((k) => k + " = " + v[k]).join(", ") : "\u2014";
}
function eventText(e) {
  if (!e) return "\u2014";
  const q = e.quantity !== null && e.quantity !== undefined ? " " + e.quantity + (e.unit ? " " + e.unit : "") : "";
  return "#" + e.seq + " " + e.name + q + " (" + new Date(e.occurred_at).toLocaleTimeString() + ")";
}
async function api(path, options) {
  const response = await fetch(path, Object.assign({headers: {Accept: "application/json"}}, options));
  if (response.status === 401) { location.href = "/login"; throw new Error("logged out"); }
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}
function post(path) { return api(path, {method: "POST", headers: Object.assign({Accept: "application/json"}, CSRF)}); }
function deviceRow(d) {
  let row = rows.get(d.device_id);
  if (row) return row;
  row = {tr: el("tr")};
  row.tr.id = "device-" + d.device_id;
  for (const name of ["id", "driver", "address", "state", "value", "seen", "event", "errors", "action"]) {
    row[name] = el("td"); row.tr.append(row[name]);
  }
  row.id.textContent = d.device_id; row.driver.textContent = d.driver;
  row.address.className = "mono"; row.value.className = "mono live-value";
  if (d.driver === "modbus") {
    const button = el("button", "Poll now");
    button.dataset.poll = d.device_id;
    const result = el("div", "", "result poll-result");
    result.id = "poll-result-" + d.device_id;
    button.addEventListener("click", () => pollNow(d.device_id, button, result, row));
    row.action.append(button, result);
  }
  $("devices").append(row.tr); rows.set(d.device_id, row);
  return row;
}
async function pollNow(id, button, result, row) {
  button.disabled = true; result.textContent = "polling\u2026";
  try {
    const body = await post("/api/devices/" + encodeURIComponent(id) + "/poll");
    result.textContent = "\u2713 " + values(body.values) + " at " + new Date(body.polled_at).toLocaleTimeString();
    row.value.textContent = values(body.values);
  } catch (error) { result.textContent = "\u2717 " + error.message; }
  button.disabled = false;
}
function enrolled(record, link) {
  if (record && record.error) return record.error;
  if (record) return "site " + record.site_id + " since " + when(record.enrolled_at);
  return link.last_success ? "not enrolled here, but the collector accepts our batches" : "not enrolled";
}
function severityClass(alarms) {
  return alarms.some((a) => a.severity === "alarm") ? "failing" : alarms.length ? "warn" : "ok";
}
function renderAlarms(s) {
  // Bare codes come from a status written before alarms were records.
  const alarms = (s.alarms || []).map((a) => typeof a === "string" ? {code: a, severity: "alarm", message: a} : a);
  const state = $("state");
  state.textContent = s.state + (alarms.length ? ", " + alarms.length + (alarms.length > 1 ? " alarms" : " alarm") : "");
  state.className = "badge " + severityClass(alarms);
  $("alarms").replaceChildren(...alarms.map((a) => {
    const banner = el("div", null, "banner " + (a.severity === "alarm" ? "alarm" : "warn"));
    banner.dataset.code = a.code;
    banner.append(el("strong", a.severity === "alarm" ? "ALARM " : "WARNING "), el("span", a.message));
    return banner;
  }));
  return alarms;
}
function deviceBadge(d, alarms) {
  const mine = alarms.filter((a) => a.code === "device_errors" && a.device_id === d.device_id);
  if (d.state === "ok" && mine.length) return el("span", "ok, recent errors", "badge " + severityClass(mine));
  const cls = d.state === "ok" ? "ok" : d.state.startsWith("paused") ? "warn" : d.state === "failing" ? "failing" : "";
  return el("span", d.state, "badge " + cls);
}
function render(s) {
  const alarms = renderAlarms(s);
  const id = s.identity || {}, link = s.cloud_link, o = s.outbox;
  const now = s.written_at;
  pairs("identity", [["Gateway", s.gateway_id], ["Collector", id.cloud_url ? url(id.cloud_url) : null],
    ["Key (SHA-256)", id.key_fingerprint ? id.key_fingerprint.slice(0, 32) + "\u2026" : null], ["Enrolled", enrolled(s.enrollment, link)]]);
  pairs("link", [["Last success", ago(link.last_success, now)], ["Last error", link.last_error ? link.last_error + " (" + ago(link.last_error_at, now) + ")" : "none"],
    ["Backlog", o.backlog + " events"], ["Oldest unsent", dur(o.oldest_unsent_age_s)], ["Sent", link.events_sent + " events in " + link.batches_sent + " batches"]]);
  pairs("outbox", [["Disk use", mb(o.used_bytes) + " of " + mb(o.budget_bytes) + (o.used_pct === null ? "" : " (" + o.used_pct + "%)")],
    ["Last seq", o.last_seq], ["Acknowledged", o.acked_seq], ["Dead letters", o.dead_letters]]);
  $("outbox-bar").style.width = Math.min(100, o.used_pct || 0) + "%";
  const full = alarms.some((a) => a.code === "outbox_full"), near = alarms.some((a) => a.code === "outbox_near_budget");
  $("outbox-bar").style.background = full ? "var(--bad)" : near ? "var(--warn)" : "var(--ok)";
  pairs("clock", [["Sync", s.clock || "unknown"], ["Gateway time", when(s.written_at)]]);
  for (const d of s.devices) {
    const row = deviceRow(d);
    row.address.textContent = d.address;
    row.state.replaceChildren(deviceBadge(d, alarms));
    row.value.textContent = values(d.last_values);
    row.seen.textContent = ago(d.last_success, now);
    row.event.textContent = eventText(lastEvent.get(d.device_id) || d.last_event);
    const counts = Object.assign({}, d.errors, d.protocol);
    const text = Object.keys(counts).map((k) => k + " " + counts[k]).join(", ");
    row.errors.textContent = text || "none";
    if (d.last_error) row.errors.title = d.last_error;
  }
}
async function refresh() {
  try { render(await api("/api/status")); $("updated").textContent = "updated " + new Date().toLocaleTimeString(); }
  catch (error) { $("updated").textContent = "status unavailable: " + error.message; }
}
function addEvent(e) {
  lastEvent.set(e.device_id, e);
  const tr = el("tr");
  for (const v of [new Date(e.occurred_at).toLocaleTimeString(), e.seq, e.device_id + (e.channel ? "/" + e.channel : ""),
    e.name, e.kind, e.quantity === null || e.quantity === undefined ? "" : e.quantity + (e.unit ? " " + e.unit : "")]) tr.append(el("td", v));
  const body = $("events-body"); body.prepend(tr);
  while (body.children.length > 200) body.lastChild.remove();
  const row = rows.get(e.device_id); if (row) row.event.textContent = eventText(e);
}
$("flush").addEventListener("click", async () => {
  $("flush-result").textContent = "flushing\u2026";
  try { const b = await post("/api/flush"); $("flush-result").textContent = "\u2713 forwarder woken; " + b.backlog + " events waiting"; }
  catch (error) { $("flush-result").textContent = "\u2717 " + error.message; }
});
$("logout").addEventListener("click", async () => { await post("/logout"); location.href = "/login"; });
const stream = new EventSource("/api/events");
stream.addEventListener("usage", (m) => addEvent(JSON.parse(m.data)));
stream.onopen = () => { $("live").textContent = "live"; $("live").className = "badge ok"; };
stream.onerror = () => { $("live").textContent = "reconnecting"; $("live").className = "badge warn"; };
refresh(); setInterval(refresh, 2000);
