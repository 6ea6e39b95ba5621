// The crew's page: the day's route from /api/v1/crew/{day} on the map (route line, numbered
// stops, depot, breaks) and as a list; Start, Complete (after-photo), Can't do and Hold.
// Every action goes through a queue kept in IndexedDB (photo included) and is sent in order
// with an Idempotency-Key of its own, so an action taken offline is sent when the connection
// returns, and one sent again (its answer lost on the way back) lands once. A refused action
// (the job went to another crew meanwhile) is said plainly, and its photo and note are kept
// for the dispatcher (POST /api/v1/crew/kept). Changes to the route show up without a reload:
// the live channel (live.js) when the server has it, else an ETag poll.
// Every text from the data reaches the page through textContent, never as HTML.

import { drawBasemap } from "./basemap.js";
import { element } from "./dom.js";

const root = document.getElementById("crew-page");
const map = window[root.dataset.map];
const words = JSON.parse(root.dataset.words);
const lang = root.dataset.lang;
const day = root.dataset.day;
const crewParam = root.dataset.crew;
const api = `/api/v1/crew/${day}` + (crewParam ? `?crew=${encodeURIComponent(crewParam)}` : "");
const saved = `geo311.crew.${day}.${crewParam}`;
const FINISHED = new Set(["completed", "closed", "cancelled"]);
const POLL_MS = 4000;

const statusLine = document.getElementById("crew-status");
const netLine = document.getElementById("crew-net");
const changeLine = document.getElementById("crew-change");
const refusedLine = document.getElementById("crew-refused");
const log = document.getElementById("crew-log");
const list = document.getElementById("stops");
const doneList = document.getElementById("done");

const state = { data: null, etag: null, selected: null, markers: new Map(), layers: null, csrf: null };

map.getContainer().setAttribute("aria-label", document.getElementById("crew-map").getAttribute("aria-label"));
for (const [selector, key] of [[".leaflet-control-zoom-in", "zoom.in"], [".leaflet-control-zoom-out", "zoom.out"]]) {
  const button = map.getContainer().querySelector(selector);
  if (button) { button.title = words[key]; button.setAttribute("aria-label", words[key]); }
}

function fill(template, values) {
  return template.replace(/\{(\w+)\}/g, (_, key) => String(values[key]));
}

function clock(iso) {
  if (!iso) return "";
  const zone = state.data ? state.data.timezone : undefined;
  return new Intl.DateTimeFormat(lang, { hour: "2-digit", minute: "2-digit", timeZone: zone }).format(new Date(iso));
}

function dayAndClock(iso) {
  const zone = state.data ? state.data.timezone : undefined;
  return new Intl.DateTimeFormat(lang, {
    weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", timeZone: zone,
  }).format(new Date(iso));
}

function wall(value) { return value ? value.slice(0, 5) : ""; }

function note(text) {
  const item = element("li", text);
  log.prepend(item);
  while (log.children.length > 6) log.lastChild.remove();
}

// --- the queue of actions (IndexedDB: it keeps Blobs, so a photo survives a reload) -------------

const DB_NAME = "geo311-crew";
let dbPromise = null;

function db() {
  dbPromise ??= new Promise((resolve, reject) => {
    const open = indexedDB.open(DB_NAME, 1);
    open.onupgradeneeded = () => open.result.createObjectStore("actions", { keyPath: "key" });
    open.onsuccess = () => resolve(open.result);
    open.onerror = () => reject(open.error);
  });
  return dbPromise;
}

async function store(mode, work) {
  const handle = await db();
  return new Promise((resolve, reject) => {
    const tx = handle.transaction("actions", mode);
    const result = work(tx.objectStore("actions"));
    tx.oncomplete = () => resolve(result.result);
    tx.onerror = () => reject(tx.error);
  });
}

async function queued() {
  const all = await store("readonly", (s) => s.getAll());
  return (all || []).sort((a, b) => a.seq - b.seq);
}

const putAction = (action) => store("readwrite", (s) => s.put(action));
const dropAction = (key) => store("readwrite", (s) => s.delete(key));

function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return `${Date.now()}-${Math.random().toString(16).slice(2)}`;
}

let seqCounter = 0;

async function enqueue(kind, stop, fields, photo = null) {
  const action = {
    key: newKey(), seq: Date.now() * 1000 + (seqCounter++ % 1000), kind,
    work_order_id: stop.work_order_id, stop_seq: stop.seq, version: stop.version,
    fields, photo, photo_name: photo ? photo.name || "after.jpg" : null,
  };
  await putAction(action);
  await showQueue();
  render();
  flush();
}

async function csrf() {
  if (state.csrf) return state.csrf;
  const response = await fetch("/api/v1/session", { credentials: "same-origin" });
  if (!response.ok) throw new Error(`session: HTTP ${response.status}`);
  state.csrf = (await response.json()).csrf_token;
  return state.csrf;
}

function request(action, token) {
  const headers = { "Idempotency-Key": action.key };
  if (token) headers["X-CSRF-Token"] = token;
  const base = `/api/v1/work-orders/${action.work_order_id}`;
  const json = (url, body) => fetch(url, {
    method: "POST", credentials: "same-origin",
    headers: { ...headers, "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  const version = action.version;
  if (action.kind === "start") return json(`${base}/transitions`, { to: "in_progress", expected_version: version });
  if (action.kind === "hold") return json(`${base}/hold`, { reason: action.fields.reason, expected_version: version });
  if (action.kind === "cant_do") {
    return json(`${base}/cant-do`, { reason: action.fields.reason, note: action.fields.note, expected_version: version });
  }
  if (action.kind === "complete") {
    const form = new FormData();
    form.append("photo", action.photo, action.photo_name);
    form.append("resolution_code", action.fields.resolution_code);
    form.append("note", action.fields.note || "");
    form.append("expected_version", String(version));
    return fetch(`${base}/complete`, { method: "POST", credentials: "same-origin", headers, body: form });
  }
  // What a refused action leaves: the photo and note, kept for the dispatcher.
  const form = new FormData();
  form.append("work_order_id", String(action.work_order_id));
  form.append("action", action.fields.action);
  form.append("note", action.fields.note || "");
  form.append("refusal", action.fields.refusal || "");
  if (action.photo) form.append("photo", action.photo, action.photo_name);
  return fetch("/api/v1/crew/kept", { method: "POST", credentials: "same-origin", headers, body: form });
}

function actionName(kind) {
  return words[{ start: "crew.start", complete: "crew.complete", cant_do: "crew.cant_do", hold: "crew.hold" }[kind]] || kind;
}

let flushing = false;

/** Send the queued actions in order; stop at the first that cannot reach the server. */
async function flush() {
  if (flushing) return;
  flushing = true;
  let sent = 0;
  try {
    for (const action of await queued()) {
      let response;
      try {
        response = await request(action, await csrf());
      } catch (error) {
        break; // offline, or the answer was lost: sent again later with the same key
      }
      sent += 1;
      if (response.ok) {
        const body = await response.json().catch(() => ({}));
        if (action.kind === "kept") {
          // Said once: beside the refusal it follows when that is on screen, else in the log.
          if (refusedLine.hidden) note(words["crew.kept"]);
          else refusedLine.textContent += ` ${words["crew.kept"]}`;
        } else {
          note(fill(words["crew.sent"], { action: actionName(action.kind), seq: action.stop_seq }));
          // The next queued action on this job names the version this one made.
          for (const later of await queued()) {
            if (later.key !== action.key && later.work_order_id === action.work_order_id && body.version) {
              later.version = body.version;
              await putAction(later);
            }
          }
        }
        await dropAction(action.key);
        continue;
      }
      if (response.status >= 500) break; // the server's trouble: try again later
      const problem = await response.json().catch(() => ({}));
      const message = problem.detail || problem.title || `HTTP ${response.status}`;
      if (action.kind === "kept") {
        await dropAction(action.key);
        continue;
      }
      // Said once, where it stays until the next refusal (not also in the passing log): the
      // API's own words.
      refusedLine.textContent = fill(words["crew.refused"], { action: actionName(action.kind), seq: action.stop_seq, message });
      refusedLine.hidden = false;
      const keep = action.photo || (action.fields.note || "").trim() || action.kind === "cant_do";
      await dropAction(action.key);
      if (keep) {
        await putAction({
          key: newKey(), seq: action.seq, kind: "kept", work_order_id: action.work_order_id,
          stop_seq: action.stop_seq, version: null, photo: action.photo, photo_name: action.photo_name,
          fields: {
            action: action.kind, refusal: message,
            note: [action.fields.note, action.fields.reason, action.fields.resolution_code].filter(Boolean).join(" — "),
          },
        });
      }
    }
  } finally {
    flushing = false;
    await showQueue();
  }
  if (sent) await load();
  if ((await queued()).length && navigator.onLine) setTimeout(flush, 3000);
}

async function showQueue() {
  const waiting = await queued();
  root.dataset.queued = String(waiting.length);
  const parts = [navigator.onLine ? words["crew.online"] : words["crew.offline"]];
  if (waiting.length) parts.push(fill(words["crew.queued"], { count: waiting.length }));
  netLine.textContent = parts.join(" ");
  netLine.classList.toggle("offline", !navigator.onLine);
  state.pending = new Map();
  for (const action of waiting) state.pending.set(action.work_order_id, action.kind === "kept" ? null : action.kind);
}

// --- the route on the map and in the list ----------------------------------------------------

function stopName(stop) { return `${stop.seq}. ${stop.category_name}`; }

function slaText(stop) {
  if (stop.sla_state === "breached") return [words["crew.breached"], "breached"];
  if (stop.sla_state === "at_risk") return [words["crew.at_risk"], "at-risk"];
  return [words["crew.on_track"], "on-track"];
}

function pendingKind(stop) { return state.pending ? state.pending.get(stop.work_order_id) : undefined; }

function isDone(stop) {
  const pending = pendingKind(stop);
  return FINISHED.has(stop.status) || pending === "complete" || pending === "cant_do";
}

function icon(stop) {
  const badge = element("span", String(stop.seq), `stop-badge ${slaText(stop)[1]}${isDone(stop) ? " done" : ""}`);
  return L.divIcon({ html: badge, className: "stop-icon", iconSize: [40, 40], iconAnchor: [20, 20] });
}

function popup(stop) {
  const box = element("div", undefined, "stop-popup");
  box.append(element("strong", stopName(stop)));
  box.append(element("p", `${words["crew.eta"]} ${clock(stop.eta)}`));
  for (const said of stop.descriptions) box.append(element("p", said, "said"));
  return box;
}

function drawMap() {
  state.layers?.remove();
  state.markers.clear();
  const data = state.data;
  const group = L.featureGroup();
  if (data.line && data.line.length > 1) {
    L.polyline(data.line.map(([x, y]) => [y, x]), { color: "#0b3d91", weight: 6, opacity: 0.85, className: "route-line" }).addTo(group);
  }
  const [dx, dy] = data.depot;
  const depot = L.circleMarker([dy, dx], { radius: 12, color: "#111", weight: 3, fillColor: "#ffd400", fillOpacity: 1, className: "depot-marker" });
  depot.bindTooltip(element("span", `${words["crew.depot"]}: ${data.depot_name || data.crew_name}`), { permanent: false });
  depot.addTo(group);
  for (const stop of data.stops) {
    const marker = L.marker([stop.lat, stop.lon], { icon: icon(stop), title: stopName(stop), keyboard: true, alt: stopName(stop) });
    marker.bindPopup(() => popup(stop));
    marker.on("click", () => select(stop.work_order_id, "map"));
    marker.addTo(group);
    state.markers.set(stop.work_order_id, marker);
  }
  // Each break where the crew will be when it starts: at the last stop before it (or the depot).
  for (const [start, end] of data.breaks) {
    const before = data.stops.filter((s) => s.end <= start).pop();
    const at = before ? [before.lat, before.lon] : [dy, dx];
    const label = element("span", `${words["crew.break"]} ${clock(start)}–${clock(end)}`, "break-badge");
    L.marker(at, {
      icon: L.divIcon({ html: label, className: "break-icon", iconSize: null, iconAnchor: [-24, 12] }),
      interactive: false, keyboard: false,
    }).addTo(group);
  }
  state.layers = group.addTo(map);
  const bounds = group.getBounds();
  if (bounds.isValid() && !state.fitted) {
    map.fitBounds(bounds.pad(0.15));
    state.fitted = true;
  }
  map.getContainer().dataset.stops = String(data.stops.length);
  map.getContainer().dataset.line = data.line ? String(data.line.length) : "0";
}

function fact(dl, label, value, className) {
  if (value === null || value === undefined || value === "") return;
  const dt = element("dt", label);
  const dd = element("dd", value, className);
  dl.append(dt, dd);
}

function button(label, className, onClick, disabled = false) {
  const b = element("button", label, `big ${className}`);
  b.type = "button";
  b.disabled = disabled;
  b.addEventListener("click", (event) => { event.stopPropagation(); onClick(); });
  return b;
}

function stopItem(stop) {
  const li = element("li", undefined, "stop");
  li.dataset.workOrder = String(stop.work_order_id);
  li.dataset.status = stop.status;
  li.tabIndex = -1;
  if (state.selected === stop.work_order_id) li.classList.add("selected");
  const head = element("div", undefined, "stop-head");
  const pick = element("button", undefined, "stop-pick");
  pick.type = "button";
  pick.append(element("span", String(stop.seq), `stop-number ${slaText(stop)[1]}`), element("span", stop.category_name, "stop-category"));
  pick.addEventListener("click", () => select(stop.work_order_id, "list"));
  head.append(pick, element("span", `${words["crew.eta"]} ${clock(stop.eta)}`, "stop-eta"));
  li.append(head);
  const [sla, slaClass] = slaText(stop);
  const pending = pendingKind(stop);
  const statusWord = words[`crewstatus.${stop.status}`] || stop.status;
  li.append(element("p", pending ? `${statusWord} · ${fill(words["crew.queued"], { count: 1 })}` : statusWord, "stop-status"));
  const dl = element("dl", undefined, "facts");
  if (stop.window_start) fact(dl, words["crew.appointment"], `${clock(stop.window_start)}–${clock(stop.window_end)}`);
  fact(dl, words["crew.window"], `${clock(stop.start)}–${clock(stop.end)}`);
  if (stop.access_start) fact(dl, words["crew.access"], `${wall(stop.access_start)}–${wall(stop.access_end)}`);
  fact(dl, words["crew.due"], `${dayAndClock(stop.due_at)} · ${sla}`, `sla ${slaClass}`);
  fact(dl, words["crew.ward"], stop.ward_name ? `${stop.ward_name} (${stop.ward})` : stop.ward);
  fact(dl, words["crew.asset"], stop.asset_id);
  li.append(dl);
  if (stop.descriptions.length) {
    const said = element("div", undefined, "said");
    said.append(element("h3", words["crew.said"]));
    for (const text of stop.descriptions) said.append(element("p", text, "description"));
    li.append(said);
  }
  if (stop.photos.length) {
    const photos = element("div", undefined, "photos");
    for (const url of stop.photos) {
      const img = element("img");
      img.src = url;
      img.alt = `${stopName(stop)} — ${words["crew.said"]}`;
      img.loading = "lazy";
      photos.append(img);
    }
    li.append(photos);
  }
  const nav = element("p", undefined, "navigate");
  const geo = element("a", words["crew.navigate"], "big link");
  geo.href = `geo:${stop.lat},${stop.lon}?q=${stop.lat},${stop.lon}`;
  const coords = element("a", `${words["crew.coordinates"]}: ${stop.lat.toFixed(5)}, ${stop.lon.toFixed(5)}`, "coords");
  coords.href = `https://www.openstreetmap.org/?mlat=${stop.lat}&mlon=${stop.lon}#map=18/${stop.lat}/${stop.lon}`;
  coords.rel = "noopener";
  nav.append(geo, coords);
  li.append(nav);
  if (!isDone(stop)) {
    const actions = element("div", undefined, "actions");
    const started = stop.status === "in_progress" || pending === "start";
    actions.append(
      button(words["crew.start"], "start", () => enqueue("start", stop, {}), started || stop.status === "on_hold"),
      button(words["crew.complete"], "primary complete", () => openComplete(stop)),
      button(words["crew.cant_do"], "warn cant-do", () => openCantDo(stop)),
      button(words["crew.hold"], "secondary hold", () => openHold(stop), stop.status === "on_hold"),
    );
    li.append(actions);
  }
  return li;
}

function render() {
  if (!state.data) return;
  const data = state.data;
  document.getElementById("crew-name").textContent = `— ${data.crew_name}`;
  const todo = data.stops.filter((s) => !isDone(s));
  const done = data.stops.filter((s) => isDone(s));
  list.replaceChildren(...todo.map(stopItem));
  doneList.replaceChildren(...done.map(stopItem));
  if (data.breaks.length) {
    for (const [a, b] of data.breaks) {
      const item = element("li", `${words["crew.break"]} ${clock(a)}–${clock(b)}`, "break");
      const after = todo.findIndex((s) => s.eta > a);
      if (after >= 0) list.insertBefore(item, list.children[after]); else list.append(item);
    }
  }
  if (!todo.length) list.append(element("li", data.plan_version === null ? words["crew.no_plan"] : words["crew.no_stops"], "empty"));
  drawMap();
  root.dataset.state = "ready";
  root.dataset.todo = todo.map((s) => s.work_order_id).join(",");
}

function select(workOrderId, from) {
  state.selected = workOrderId;
  for (const li of root.querySelectorAll("li.stop")) li.classList.toggle("selected", li.dataset.workOrder === String(workOrderId));
  const li = root.querySelector(`li.stop[data-work-order="${workOrderId}"]`);
  if (from === "map" && li) { li.scrollIntoView({ block: "nearest" }); li.focus({ preventScroll: true }); }
  const marker = state.markers.get(workOrderId);
  if (from === "list" && marker) { map.closePopup(); map.panTo(marker.getLatLng()); marker.openPopup(); }
  root.dataset.selected = String(workOrderId);
}

// --- what changed -----------------------------------------------------------------------------

function describeChange(before, after) {
  if (!before) return;
  const mine = state.pending || new Map();
  const old = new Map(before.stops.filter((s) => !FINISHED.has(s.status)).map((s) => [s.work_order_id, s]));
  const now = new Map(after.stops.map((s) => [s.work_order_id, s]));
  const added = after.stops.filter((s) => !old.has(s.work_order_id) && !FINISHED.has(s.status) && !before.stops.some((b) => b.work_order_id === s.work_order_id));
  const removed = [...old.values()].filter((s) => !now.has(s.work_order_id) && !mine.has(s.work_order_id) && !state.actedOn.has(s.work_order_id));
  const lines = [];
  if (added.length) lines.push(fill(words["crew.added"], { count: added.length, names: added.map((s) => `${s.category_name} (${s.seq})`).join(", ") }));
  if (removed.length) lines.push(fill(words["crew.removed"], { count: removed.length, names: removed.map((s) => s.category_name).join(", ") }));
  if (lines.length) {
    changeLine.textContent = `${words["crew.changed"]} ${lines.join(" ")}`;
    changeLine.hidden = false;
  }
}

state.actedOn = new Set();

async function load() {
  try {
    const headers = state.etag ? { "If-None-Match": state.etag } : {};
    const response = await fetch(api, { credentials: "same-origin", headers, cache: "no-store" });
    if (response.status === 304) return;
    if (!response.ok) {
      const problem = await response.json().catch(() => ({}));
      throw new Error(problem.detail || `HTTP ${response.status}`);
    }
    const data = await response.json();
    describeChange(state.data, data);
    state.data = data;
    state.etag = response.headers.get("ETag");
    try { localStorage.setItem(saved, JSON.stringify(data)); } catch { /* full: the worker's cache still has it */ }
    statusLine.textContent = fill(words["crew.updated"], { time: clock(new Date().toISOString()) });
    render();
  } catch (error) {
    if (!state.data) {
      const kept = localStorage.getItem(saved);
      if (kept) {
        state.data = JSON.parse(kept);
        render();
      } else {
        statusLine.textContent = fill(words["crew.failed"], { error: error.message });
        root.dataset.state = "failed";
      }
    }
  }
}

// --- the forms --------------------------------------------------------------------------------

function dialogFor(id, stop, onSend) {
  const dialog = document.getElementById(id);
  const form = dialog.querySelector("form");
  form.reset();
  form.querySelector(".form-error").textContent = "";
  dialog.querySelector(".dialog-stop").textContent = `${stopName(stop)} — ${stop.descriptions[0] || ""}`;
  const preview = dialog.querySelector("img.preview");
  if (preview) { preview.hidden = true; preview.removeAttribute("src"); }
  form.onsubmit = async (event) => {
    event.preventDefault();
    const error = onSend(form);
    if (error) { form.querySelector(".form-error").textContent = error; return; }
    dialog.close();
  };
  form.querySelector("button[value=cancel]").onclick = () => dialog.close();
  dialog.showModal();
}

function openComplete(stop) {
  dialogFor("complete-dialog", stop, (form) => {
    const photo = form.elements.photo.files[0];
    if (!photo) return words["crew.photo_needed"];
    state.actedOn.add(stop.work_order_id);
    enqueue("complete", stop, { resolution_code: form.elements.resolution_code.value, note: form.elements.note.value }, photo);
    return null;
  });
}

document.getElementById("complete-photo").addEventListener("change", (event) => {
  const file = event.target.files[0];
  const preview = document.getElementById("complete-preview");
  if (file) { preview.src = URL.createObjectURL(file); preview.hidden = false; }
});

function openCantDo(stop) {
  dialogFor("cant-dialog", stop, (form) => {
    if (!form.elements.reason.value) return words["crew.reason_needed"];
    state.actedOn.add(stop.work_order_id);
    enqueue("cant_do", stop, { reason: form.elements.reason.value, note: form.elements.note.value });
    return null;
  });
}

function openHold(stop) {
  dialogFor("hold-dialog", stop, (form) => {
    if (!form.elements.reason.value.trim()) return words["crew.reason_needed"];
    enqueue("hold", stop, { reason: form.elements.reason.value.trim() });
    return null;
  });
}

// --- staying current ---------------------------------------------------------------------------

async function listenLive() {
  if (!root.dataset.liveModule) return false;
  try {
    const live = await import(root.dataset.liveModule);
    const concerns = (data) => {
      const mine = state.data ? state.data.crew_id : null;
      return data.crew_id === mine || data.previous_crew_id === mine
        || (state.data && state.data.stops.some((s) => s.work_order_id === data.id));
    };
    // A day plan stored or moved in one go sends an event per work order: one reload for a
    // burst, a quarter of a second after its last event.
    let timer = null;
    const soon = () => { clearTimeout(timer); timer = setTimeout(load, 250); };
    const ourPlan = (data) => {
      const mine = state.data ? state.data.crew_id : null;
      return data.day === day && (!data.crew_ids || !data.crew_ids.length || data.crew_ids.includes(mine));
    };
    live.listen({
      work_order: (data) => { if (concerns(data)) soon(); },
      plan: (data) => { if (ourPlan(data)) soon(); },
      incident: () => {},
      open: () => soon(),
      error: () => {},
    });
    root.dataset.live = "sse";
    return true;
  } catch {
    return false;
  }
}

window.addEventListener("online", () => { showQueue(); flush(); load(); });
window.addEventListener("offline", () => showQueue());

if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("/crew-sw.js", { scope: "/crew" }).then(
    () => { root.dataset.worker = "registered"; },
    () => { root.dataset.worker = "failed"; },
  );
}

await showQueue();
await load();
drawBasemap(map, "/api/v1/basemap").catch(() => {});
csrf().catch(() => {});
flush();
const live = await listenLive();
// The poll stays as the fallback (and as a safety net under the live channel, slower).
setInterval(() => { if (navigator.onLine) load(); }, live ? POLL_MS * 5 : POLL_MS);
if (!live) root.dataset.live = "poll";
