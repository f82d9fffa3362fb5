// wagate dashboard: plain JavaScript, no build step. Talks to the gateway's own API with the key from session
// storage (sent only in the X-Api-Key header) and follows its events over the WebSocket (with a single-use ticket).

const KEY_STORE = "wagate.apiKey";
const $ = (selector) => document.querySelector(selector);
const state = { key: null, role: null, sessions: new Map(), selected: null, ws: null, wsRetry: 0, qrExpires: 0, qrTimer: null, demo: false };

class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

async function api(method, path, body, headers = {}) {
  const init = { method, headers: { "X-Api-Key": state.key, ...headers } };
  if (body !== undefined) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
  const response = await fetch(path, init);
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = data && data.error ? data.error : { code: "http_error", message: `HTTP ${response.status}` };
    throw new ApiError(response.status, error.code, error.message);
  }
  return data;
}

function banner(message, ok = false) {
  const box = $("#banner");
  box.textContent = message;
  box.className = ok ? "ok" : "";
  box.hidden = !message;
}

async function guarded(action) {
  try { banner(""); await action(); } catch (error) { banner(error.message || String(error)); }
}

function when(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleString() : "";
}

// A session read over HTTP may be older than an event already applied (the answer crossed the event): keep the newer.
function remember(session) {
  const known = state.sessions.get(session.name);
  if (!known || (session.updated_at || 0) >= (known.updated_at || 0)) state.sessions.set(session.name, session);
  return state.sessions.get(session.name);
}

function show(view) {
  for (const id of ["sign-in-view", "tenant-view", "admin-view"]) $("#" + id).hidden = id !== view;
  $("#sign-out").hidden = view === "sign-in-view";
}

// --- signing in -------------------------------------------------------------------------------------------------

async function signIn(key) {
  state.key = key;
  try {
    await api("GET", "/api/sessions?all=true");
    state.role = "tenant";
  } catch (error) {
    if (error.code === "tenant_key_required") state.role = "admin";
    else {
      state.key = null;
      sessionStorage.removeItem(KEY_STORE);
      throw error.status === 401 ? new Error("That API key is not valid. Check it and try again.") : error;
    }
  }
  sessionStorage.setItem(KEY_STORE, key);
  const config = await fetch("/api/dashboard/config").then((r) => r.json());
  state.demo = Boolean(config.demo);
  $("#who").textContent = state.role === "admin" ? "admin" : "tenant";
  if (state.role === "admin") { show("admin-view"); await loadAdmin(); }
  else { show("tenant-view"); await loadTenant(); }
}

function signOut() {
  sessionStorage.removeItem(KEY_STORE);
  if (state.ws) { state.ws.onclose = null; state.ws.close(); }
  location.hash = "";
  location.reload();
}

// --- tenant: sessions -------------------------------------------------------------------------------------------

async function loadTenant() {
  await loadSessions();
  await loadWebhooks();
  connectEvents();
  const wanted = new URLSearchParams(location.hash.slice(1)).get("session");
  if (wanted && state.sessions.has(wanted)) await select(wanted);
}

async function loadSessions() {
  const list = await api("GET", "/api/sessions?all=true");
  const previous = state.sessions;
  state.sessions = new Map();
  for (const session of list) {
    const known = previous.get(session.name);
    state.sessions.set(session.name, known && (known.updated_at || 0) > (session.updated_at || 0) ? known : session);
  }
  renderSessions();
}

// The account's number: WAHA's MeInfo gives it as id "N@c.us"; an event's "me" may give "phone" as well.
function phoneOf(me) {
  if (!me) return "";
  if (me.phone) return me.phone;
  const match = /^(\d+)@c\.us$/.exec(me.id || "");
  return match ? "+" + match[1] : me.id || "";
}

function renderSessions() {
  const body = $("#sessions tbody");
  body.replaceChildren();
  for (const session of [...state.sessions.values()].sort((a, b) => a.name.localeCompare(b.name))) {
    const row = document.createElement("tr");
    row.tabIndex = 0;
    row.dataset.name = session.name;
    if (session.name === state.selected) row.classList.add("selected");
    const status = document.createElement("span");
    status.className = `status ${session.status}`;
    status.textContent = session.status + (session.reason ? ` (${session.reason})` : "");
    const cells = [session.name, status, phoneOf(session.me), when(session.connected_at)];
    for (const value of cells) {
      const cell = document.createElement("td");
      if (value instanceof Node) cell.append(value); else cell.textContent = value;
      row.append(cell);
    }
    row.addEventListener("click", () => guarded(() => select(session.name)));
    row.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); guarded(() => select(session.name)); } });
    body.append(row);
  }
  $("#no-sessions").hidden = state.sessions.size > 0;
}

async function select(name) {
  state.selected = name;
  location.hash = "session=" + encodeURIComponent(name);
  const session = remember(await api("GET", `/api/sessions/${encodeURIComponent(name)}`));
  renderSessions();
  await renderDetail(session, true);
}

async function renderDetail(session, full = false) {
  $("#detail").hidden = false;
  $("#detail-name").textContent = session.name;
  const status = $("#detail-status");
  status.textContent = session.status;
  status.className = `status ${session.status}`;
  $("#detail-reason").textContent = session.reason ? `(${session.reason})` : "";
  $("#detail-note").textContent = session.note || "";
  const connected = $("#connected-as");
  connected.hidden = !(session.status === "WORKING" && session.me);
  connected.textContent = session.me ? `Connected as ${phoneOf(session.me)}${session.me.pushName ? " (" + session.me.pushName + ")" : ""}` : "";
  const linking = session.status === "SCAN_QR_CODE";
  $("#linking").hidden = !linking;
  $("#simulate-scan").hidden = !(linking && state.demo);
  if (linking) await loadQr(session.name); else stopQr();
  if (full) await Promise.all([loadHistory(session.name), loadBackups(session.name)]);
  else await loadHistory(session.name);
}

async function loadQr(name) {
  try {
    const qr = await api("GET", `/api/${encodeURIComponent(name)}/auth/qr`, undefined, { Accept: "application/json" });
    $("#qr").src = `data:${qr.mimetype};base64,${qr.data}`;
    state.qrExpires = qr.expiresAt || 0;
    tickQr();
  } catch (error) {
    if (error.code === "qr_not_ready") { $("#qr-countdown").textContent = "Waiting for a QR code…"; setTimeout(() => refreshSelected(), 1000); }
    else if (error.code !== "not_scanning") throw error;
  }
}

function tickQr() {
  clearTimeout(state.qrTimer);
  const left = Math.max(0, Math.round(state.qrExpires - Date.now() / 1000));
  $("#qr-countdown").textContent = state.qrExpires ? `This code changes in ${left} s` : "";
  if (state.qrExpires && left <= 0) { state.qrTimer = setTimeout(() => refreshSelected(), 1000); return; }
  if (state.qrExpires) state.qrTimer = setTimeout(tickQr, 1000);
}

function stopQr() {
  clearTimeout(state.qrTimer);
  state.qrExpires = 0;
  $("#qr").removeAttribute("src");
  $("#qr-countdown").textContent = "";
  $("#pair-code").hidden = true;
}

async function refreshSelected() {
  if (!state.selected) return;
  await guarded(async () => {
    const session = remember(await api("GET", `/api/sessions/${encodeURIComponent(state.selected)}`));
    renderSessions();
    await renderDetail(session);
  });
}

async function loadHistory(name) {
  const entries = await api("GET", `/api/sessions/${encodeURIComponent(name)}/history?limit=50`);
  const list = $("#history");
  list.replaceChildren(...entries.map((entry) => {
    const item = document.createElement("li");
    const change = entry.kind === "status"
      ? `${entry.from_status || "—"} → ${entry.to_status}`
      : entry.kind === "desired" ? `asked to be ${entry.desired}` : entry.kind;
    item.textContent = `${when(entry.at)} · ${change}${entry.reason ? " (" + entry.reason + ")" : ""} · ${entry.actor}`;
    return item;
  }));
}

async function loadBackups(name) {
  const backups = await api("GET", `/api/sessions/${encodeURIComponent(name)}/backups`);
  const list = $("#backups");
  list.replaceChildren(...backups.map((b) => {
    const item = document.createElement("li");
    item.textContent = `${when(b.created_at)} · ${b.reason} · ${b.records} records`;
    return item;
  }));
  if (!backups.length) { const item = document.createElement("li"); item.className = "hint"; item.textContent = "No backups."; list.append(item); }
}

async function loadWebhooks() {
  const hooks = await api("GET", "/api/webhooks");
  const list = $("#webhooks");
  list.replaceChildren(...hooks.map((h) => {
    const item = document.createElement("li");
    item.textContent = `${h.url} · ${h.events.join(", ")}${h.session ? " · " + h.session : ""}${h.header_names.length ? " · headers: " + h.header_names.join(", ") : ""}${h.pending_deliveries ? " · " + h.pending_deliveries + " pending" : ""}${h.dead_letters ? " · " + h.dead_letters + " dead" : ""}${h.enabled ? "" : " · disabled: " + h.disabled_reason}${h.blocked_reason ? " · " + h.blocked_reason : ""}`;
    return item;
  }));
  if (!hooks.length) { const item = document.createElement("li"); item.className = "hint"; item.textContent = "No webhooks."; list.append(item); }
}

async function act(button) {
  const name = state.selected;
  const action = button.dataset.action;
  if (!name) return;
  if (button.dataset.confirm && !confirm(button.dataset.confirm)) return;
  const path = `/api/sessions/${encodeURIComponent(name)}`;
  if (action === "delete") {
    await api("DELETE", path);
    state.sessions.delete(name);
    state.selected = null;
    location.hash = "";
    $("#detail").hidden = true;
    stopQr();
    renderSessions();
    banner(`Deleted ${name}.`, true);
    return;
  }
  const session = remember(await api("POST", `${path}/${action}`));
  renderSessions();
  await renderDetail(session);
}

async function simulateScan() {
  const name = state.selected;
  const raw = await api("GET", `/api/${encodeURIComponent(name)}/auth/qr?format=raw`);
  const phone = "+1555" + String(Math.floor(Math.random() * 1e7)).padStart(7, "0");
  // The simulator's control API takes the key signed in here: a tenant's scans only its own sessions' codes.
  try { await api("POST", "/sim/phone/scan", { phone, qr: raw.value }); }
  catch (error) { throw new Error(`The simulated phone could not scan the code (${error.message}); try again.`); }
  banner(`Simulated phone ${phone} scanned the code.`, true);
}

// --- events -----------------------------------------------------------------------------------------------------

async function connectEvents() {
  let ticket;
  try { ticket = (await api("POST", "/api/events/ticket")).ticket; }
  catch (error) { banner("Live updates are off: " + error.message); return; }
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws?events=session.*&ticket=${encodeURIComponent(ticket)}`);
  state.ws = ws;
  ws.onopen = async () => {
    // Whatever changed before the stream was open is read once now: no event is missed in between.
    state.wsRetry = 0;
    await guarded(loadSessions);
    await refreshSelected();
  };
  ws.onmessage = (message) => onEvent(JSON.parse(message.data));
  ws.onclose = () => {
    if (state.ws !== ws) return;
    const delay = Math.min(30000, 1000 * 2 ** state.wsRetry++);
    setTimeout(connectEvents, delay);
  };
}

async function onEvent(event) {
  // WAHA's envelope: the name in `event`, the time in ms.
  const session = state.sessions.get(event.session);
  const at = event.timestamp / 1000;
  if (event.event === "session.status") {
    if (!session) { await guarded(loadSessions); return; }
    if ((session.updated_at || 0) > at + 1) return;  // already newer than this event
    const connectedNow = event.payload.status === "WORKING" && event.payload.previous !== "WORKING";
    Object.assign(session, {
      status: event.payload.status, reason: event.payload.reason, note: event.payload.note,
      me: event.payload.me, updated_at: Math.max(at, session.updated_at || 0),
      connected_at: connectedNow ? at : session.connected_at,
    });
    renderSessions();
    if (event.session === state.selected) await guarded(() => renderDetail(session));
  } else if (event.event === "session.qr" && event.session === state.selected && session && session.status === "SCAN_QR_CODE") {
    await guarded(() => loadQr(event.session));
  } else if (["session.corrupted", "session.reset", "session.paired"].includes(event.event) && event.session === state.selected) {
    await refreshSelected();
  }
}

// --- admin ------------------------------------------------------------------------------------------------------

async function loadAdmin() {
  const [tenants, status] = await Promise.all([api("GET", "/api/tenants"), api("GET", "/api/server/status")]);
  $("#tenants tbody").replaceChildren(...tenants.map((t) => {
    const row = document.createElement("tr");
    for (const value of [t.name, t.id, t.max_sessions ?? "default"]) {
      const cell = document.createElement("td");
      cell.textContent = value;
      row.append(cell);
    }
    return row;
  }));
  const facts = {
    Version: status.version,
    Uptime: `${Math.round(status.uptime / 1000)} s`,
    Store: `${status.store.backend}, ${status.store.reachable ? status.store.latency_ms + " ms" : "unreachable"}`,
    Redis: status.redis.configured ? (status.redis.reachable ? `${status.redis.latency_ms} ms` : "unreachable") : "not configured",
    Sessions: `${status.sessions.total} (${status.sessions.healthy_percent} % of those that should run are working)`,
    Memory: `${Math.round(status.memory_rss_bytes / 1048576)} MiB`,
    CPU: `${status.cpu_percent} %`,
    "Error rate": `${(status.error_rate * 100).toFixed(2)} %`,
    "Average response": `${status.avg_response_ms} ms`,
  };
  $("#server-status").replaceChildren(...Object.entries(facts).flatMap(([k, v]) => {
    const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = v;
    return [dt, dd];
  }));
}

// --- wiring -----------------------------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("#sign-in-form").addEventListener("submit", (e) => {
    e.preventDefault();
    guarded(() => signIn($("#api-key").value.trim()));
  });
  $("#sign-out").addEventListener("click", signOut);
  $("#create-form").addEventListener("submit", (e) => {
    e.preventDefault();
    guarded(async () => {
      const name = $("#new-name").value.trim();
      const session = remember(await api("POST", "/api/sessions", { name }));
      $("#new-name").value = "";
      await select(session.name);
    });
  });
  for (const button of document.querySelectorAll("[data-action]")) {
    button.addEventListener("click", () => guarded(() => act(button)));
  }
  $("#simulate-scan").addEventListener("click", () => guarded(simulateScan));
  $("#pair-form").addEventListener("submit", (e) => {
    e.preventDefault();
    guarded(async () => {
      const answer = await api("POST", `/api/${encodeURIComponent(state.selected)}/auth/request-code`, { phoneNumber: $("#pair-phone").value.trim() });
      const code = $("#pair-code");
      code.textContent = answer.code;
      code.hidden = false;
    });
  });
  const saved = sessionStorage.getItem(KEY_STORE);
  if (saved) guarded(() => signIn(saved).catch((error) => { show("sign-in-view"); throw error; }));
  else show("sign-in-view");
});
