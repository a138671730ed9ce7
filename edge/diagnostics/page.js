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
  for (const [k, v] of list) dl.append(el("dt", k), el("dd", v === null || v === undefined ? "\u2014" : v));
}
function when(iso) { return iso ? new Date(iso).toLocaleString() : "never"; }
function dur(s) {
  if (s === null || s === undefined) return "\u2014";
  if (s < 90) return Math.round(s) + " s"; if (s < 5400) return Math.round(s / 60) + " min";
  return (s / 3600).toFixed(1) + " h";
}
function bytes(n) { return n < 1048576 ? (n / 1024).toFixed(1) + " KiB" : (n / 1048576).toFixed(1) + " MiB"; }
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
function render(s) {
  $("state").textContent = s.state;
  const alarms = s.alarms || [];
  $("alarm").style.display = alarms.length ? "block" : "none";
  $("alarm").textContent = alarms.includes("outbox_full")
    ? "ALARM: the outbox is full. Sources that keep their own log are paused until the cloud link drains it."
    : alarms.join(", ");
  const id = s.identity || {}, link = s.cloud_link, o = s.outbox;
  pairs("identity", [["Gateway", s.gateway_id], ["Collector", id.cloud_url],
    ["Key (SHA-256)", id.key_fingerprint ? id.key_fingerprint.slice(0, 32) + "\u2026" : null], ["Enrolled", enrolled(s.enrollment, link)]]);
  pairs("link", [["Last success", when(link.last_success)], ["Last error", link.last_error ? link.last_error + " (" + when(link.last_error_at) + ")" : "none"],
    ["Backlog", o.backlog + " events"], ["Oldest unsent", dur(o.oldest_unsent_age_s)], ["Sent", link.events_sent + " events in " + link.batches_sent + " batches"]]);
  pairs("outbox", [["Disk use", bytes(o.used_bytes) + " of " + bytes(o.budget_bytes) + (o.used_pct === null ? "" : " (" + o.used_pct + "%)")],
    ["Last seq", o.last_seq], ["Acknowledged", o.acked_seq], ["Dead letters", o.dead_letters]]);
  $("outbox-bar").style.width = Math.min(100, o.used_pct || 0) + "%";
  $("outbox-bar").style.background = (o.used_pct || 0) > 90 ? "var(--bad)" : "var(--ok)";
  pairs("clock", [["Sync", s.clock || "unknown"], ["Gateway time", when(s.written_at)]]);
  for (const d of s.devices) {
    const row = deviceRow(d);
    row.address.textContent = d.address;
    row.state.replaceChildren(el("span", d.state, "badge " + (d.state === "ok" ? "ok" : d.state.startsWith("paused") ? "warn" : d.state === "failing" ? "failing" : "")));
    row.value.textContent = values(d.last_values);
    row.seen.textContent = when(d.last_success);
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
