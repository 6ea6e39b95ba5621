// The dispatcher's map: the day's open work from /api/v1/dispatch/board, markers in crew
// colours (status by shape, SLA risk by a badge, the stop's number inside), route lines, the
// crews' and the queue's lists, filters over map and lists together; select jobs (click,
// shift-click, box, lasso), preview a move (/plans/{day}/moves/preview), commit it; popup
// actions through the existing API; live updates. Every text from the server reaches the
// page through textContent, never as HTML.
import { drawBasemap } from "./basemap.js";
import { element } from "./dom.js";

const root = document.getElementById("dispatch-map");
const map = window[root.dataset.map];
const cluster = window[root.dataset.cluster];
const words = JSON.parse(root.dataset.words);
const lang = root.dataset.lang;
const zone = root.dataset.timezone;
const csrf = root.dataset.csrf;
const $ = (id) => document.getElementById(id);
const status = $("dispatch-status");
const form = $("dispatch-filter");
const dayInput = $("day");
const toCrew = $("to-crew");
const dialog = $("preview");
const time = new Intl.DateTimeFormat(lang, { hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: zone });

const state = {
  board: null,
  day: dayInput.value,
  selected: new Set(),
  markers: new Map(),
  tool: null, // "box" | "lasso" | null
  preview: null, // {body, answer}
  queueOnMap: true, // the queue's layer, switched in the map's layer control
};
const routeLayer = L.layerGroup().addTo(map);
const BUBBLE_MAX_PX = cluster.options.maxClusterRadius;
// Cluster bubbles: a ring of the crews' colours, each crew's arc as long as its share of the
// jobs inside (grey: the queue), the count in the middle; the legend says so.
cluster.options.iconCreateFunction = (group) => {
  const counts = new Map();
  for (const m of group.getAllChildMarkers()) {
    const crew = jobById(m.jobId)?.crew ?? "";
    counts.set(crew, (counts.get(crew) || 0) + 1);
  }
  const total = group.getChildCount();
  const shares = [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  let at = 0;
  const stops = shares.map(([crew, n]) => {
    const from = at;
    at += (n / total) * 100;
    return `${crew ? crewColour(crew) : QUEUE_GREY} ${from.toFixed(2)}% ${at.toFixed(2)}%`;
  });
  // Never wider than the cluster's radius: markers that far apart make two bubbles, and two
  // bubbles wider than that are drawn over each other.
  const size = Math.min(BUBBLE_MAX_PX, total < 10 ? 26 : total < 100 ? 32 : 38);
  const html = document.createElement("div");
  html.className = total >= 1000 ? "crew-cluster wide" : "crew-cluster";
  html.style.background = `conic-gradient(${stops.join(", ")})`;
  html.style.width = html.style.height = `${size}px`;
  html.dataset.crews = shares.map(([crew, n]) => `${crew || "-"}:${n}`).join(" ");
  html.append(element("span", String(total)));
  return L.divIcon({ html, className: "crew-cluster-icon", iconSize: L.point(size, size) });
};
const previewLayer = L.layerGroup().addTo(map);
// The queue (work waiting for a crew) is a layer of its own that the dispatcher switches off
// to see the crews' work alone. Its markers stay in the one cluster, so crowded places still
// make one bubble; the layer control's box adds or drops them there. The queue's list stays.
const queueLayer = L.layerGroup().addTo(map);
L.control.layers(null, { [words["dispatch.queue_layer"]]: queueLayer }, { collapsed: false, position: "topleft" }).addTo(map);
map.on("overlayadd overlayremove", (event) => {
  if (event.layer !== queueLayer) return;
  state.queueOnMap = event.type === "overlayadd";
  draw();
});
// On the map: shown by the filters, and the queue only while its layer is on.
const onMap = (job, f) => visible(job, f) && (Boolean(job.crew) || state.queueOnMap);
// Window hooks for the browser tests and the bench: the board as drawn, and when.
window.dispatchPage = { state, drawnAt: 0, loads: 0 };

map.getContainer().setAttribute("aria-label", root.getAttribute("aria-label"));
for (const [selector, key] of [[".leaflet-control-zoom-in", "zoom.in"], [".leaflet-control-zoom-out", "zoom.out"]]) {
  const button = map.getContainer().querySelector(selector);
  if (button) { button.title = words[key]; button.setAttribute("aria-label", words[key]); }
}
drawBasemap(map, "/api/v1/basemap").catch(() => {});

// Wall-clock times in the city's zone, whatever zone the browser sits in: an appointment is
// typed and shown as the city's clocks read.
const zoneParts = new Intl.DateTimeFormat("en-CA", { timeZone: zone, hourCycle: "h23",
  year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });
function partsIn(date) {
  const p = Object.fromEntries(zoneParts.formatToParts(date).map((x) => [x.type, Number(x.value)]));
  return p;
}
function wallOf(date) {
  const p = partsIn(date);
  const two = (n) => String(n).padStart(2, "0");
  return `${p.year}-${two(p.month)}-${two(p.day)}T${two(p.hour)}:${two(p.minute)}`;
}
function zoneOffsetMs(ms) {
  const p = partsIn(new Date(ms));
  return Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second) - Math.floor(ms / 1000) * 1000;
}
// "YYYY-MM-DDTHH:MM" on the city's clocks → the instant (twice, for a day the clocks change).
function instantOf(wall) {
  const [d, t] = wall.split("T");
  const [y, mo, da] = d.split("-").map(Number);
  const [h, mi] = t.split(":").map(Number);
  const asUtc = Date.UTC(y, mo - 1, da, h, mi);
  return new Date(asUtc - zoneOffsetMs(asUtc - zoneOffsetMs(asUtc)));
}
const dayTime = new Intl.DateTimeFormat(lang, { dateStyle: "medium", timeStyle: "short", hourCycle: "h23", timeZone: zone });

function fill(template, values) {
  return template.replace(/\{(\w+)\}/g, (_, key) => String(values[key]));
}

function hm(seconds) {
  const h = Math.floor(seconds / 3600);
  const m = Math.round((seconds % 3600) / 60);
  return `${h} h ${String(m).padStart(2, "0")}`;
}

function say(text, problem = false) {
  status.textContent = text;
  status.classList.toggle("problem", problem);
}

async function api(method, url, body) {
  const response = await fetch(url, {
    method,
    credentials: "same-origin",
    headers: body === undefined ? { "X-CSRF-Token": csrf } : { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try { data = await response.json(); } catch { data = null; }
  return { ok: response.ok, status: response.status, data };
}

function problemText(data) {
  if (!data) return "?";
  const details = (data.errors || []).map((e) => e.message).filter(Boolean);
  return [data.detail || data.title || "", ...details].filter(Boolean).join(" — ");
}

// --- what the board says -----------------------------------------------------------------------

// Look-ups by id, rebuilt with each board (a city's backlog is thousands of jobs).
state.byId = new Map();
state.colours = new Map();
const crewColour = (code) => state.colours.get(code) ?? "#6b7280";
const QUEUE_GREY = "#4b5563";
const jobById = (id) => state.byId.get(id);
function index() {
  state.byId = new Map(state.board.jobs.map((j) => [j.id, j]));
  state.colours = new Map(state.board.crews.map((c) => [c.code, c.colour]));
}

function risk(job) {
  if (job.sla === "breached") return "breached";
  if (job.late) return "late";
  if (job.sla === "at_risk") return "at_risk";
  return null;
}

function filters() {
  const data = new FormData(form);
  return {
    ward: data.get("ward"), category: data.get("category"), crew: data.get("crew"),
    status: data.get("status"), sla: data.get("sla"),
    search: String(data.get("search") || "").trim().toLowerCase(),
  };
}

function visible(job, f) {
  if (f.ward && job.ward !== f.ward) return false;
  if (f.category && job.category !== f.category) return false;
  if (f.crew === "-" ? job.crew !== null : f.crew && job.crew !== f.crew) return false;
  if (f.status && job.status !== f.status) return false;
  if (f.sla && risk(job) !== f.sla && !(f.sla === "at_risk" && job.sla === "at_risk")) return false;
  if (f.search) {
    const hay = `${job.tracking_id || ""} ${job.address || ""} ${job.id}`.toLowerCase();
    if (!hay.includes(f.search)) return false;
  }
  return true;
}

function label(job) {
  const parts = [`#${job.id}`, job.category_name];
  if (job.address) parts.push(job.address);
  return parts.join(" · ");
}

// --- drawing ----------------------------------------------------------------------------------

// The stop number's colour on a crew's colour: white or near-black, whichever reads better
// (WCAG relative luminance).
function ink(hex) {
  const channel = (i) => {
    const c = parseInt(hex.slice(i, i + 2), 16) / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  };
  const l = 0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5);
  return (1.05 / (l + 0.05)) >= ((l + 0.05) / 0.0625) ? "#fff" : "#111827";
}

function icon(job) {
  const classes = ["job-pin", `s-${job.status}`];
  if (!job.crew) classes.push("queued");
  if (state.selected.has(job.id)) classes.push("selected");
  const html = document.createElement("div");
  html.className = classes.join(" ");
  const colour = job.crew ? crewColour(job.crew) : QUEUE_GREY;
  html.style.setProperty("--crew", colour);
  if (job.crew && job.status !== "on_hold") html.style.color = ink(colour);
  html.style.width = html.style.height = "18px";
  html.textContent = job.seq ?? "";
  const r = risk(job);
  if (r) html.append(element("span", undefined, `risk ${r}`));
  return L.divIcon({ className: "job-icon", html, iconSize: [22, 22], iconAnchor: [11, 11] });
}

function marker(job) {
  const m = L.marker([job.lat, job.lon], {
    icon: icon(job), keyboard: true, title: label(job), alt: label(job),
  });
  m.jobId = job.id;
  m.on("click", (event) => {
    select(job.id, event.originalEvent?.shiftKey);
  });
  m.bindPopup(() => popup(jobById(job.id) ?? job), { maxWidth: 320, minWidth: 240 });
  return m;
}

// Route lines by crew: a change redraws only its crews' lines.
const routeLines = new Map();

function drawRoute(code, f = filters()) {
  routeLines.get(code)?.remove();
  routeLines.delete(code);
  const route = state.board.routes.find((r) => r.crew === code);
  if (!route?.line) return;
  if (f.crew && f.crew !== route.crew) return;
  if (!route.stops.some((id) => state.markers.has(id))) return;
  routeLines.set(code, L.polyline(route.line.map(([x, y]) => [y, x]), {
    color: crewColour(route.crew), weight: 4, opacity: 0.8, interactive: false,
    className: `route route-${route.crew}`,
  }).addTo(routeLayer));
}

function drawRoutes() {
  routeLayer.clearLayers();
  routeLines.clear();
  const f = filters();
  for (const route of state.board.routes) drawRoute(route.crew, f);
}

function crewItem(crew, jobs) {
  const item = element("li");
  item.dataset.crew = crew.code;
  const head = element("div", undefined, "crew-head");
  const swatch = element("span", undefined, "crew-swatch");
  swatch.style.background = crew.colour;
  head.append(swatch, element("span", `${crew.name} (${crew.code})`));
  jobs.sort((a, b) => (a.seq ?? 1e9) - (b.seq ?? 1e9));
  const stops = jobs.filter((j) => j.seq !== null).length;
  item.append(head, element("p",
    `${stops} ${words["dispatch.stops"]} · ${words["dispatch.load"]} ${hm(crew.busy_s)} · ${words["dispatch.free"]} ${hm(crew.free_s)}`,
    "crew-facts"));
  const list = element("ol");
  for (const job of jobs) list.append(jobLine(job));
  item.append(list);
  if (crew.working) {
    const replan = element("button", words["dispatch.replan_crew"]);
    replan.type = "button";
    replan.addEventListener("click", () => replanCrews([crew.code]));
    item.append(replan);
  }
  return item;
}

// The queue's rows by job id, so a change adds or removes single rows in a long queue.
const queueRows = new Map();

function queueLine(job) {
  const line = jobLine(job);
  line.append(element("span", job.queued_detail || job.queued || "", "why"));
  queueRows.set(job.id, line);
  return line;
}

function queueItems(shown) {
  queueRows.clear();
  const items = [];
  for (const job of state.board.jobs) {
    if (shown(job) && !job.crew) items.push(queueLine(job));
  }
  return items;
}

// One job's queue row out, and back in at its place (the board's order: most urgent first).
function redrawQueueRow(id, isShown) {
  queueRows.get(id)?.remove();
  queueRows.delete(id);
  const job = jobById(id);
  if (!job || job.crew || !isShown(job)) return;
  const line = queueLine(job);
  const jobs = state.board.jobs;
  let next = null;
  for (let i = jobs.indexOf(job) + 1; i < jobs.length && !next; i++) next = queueRows.get(jobs[i].id) ?? null;
  $("queue-list").insertBefore(line, next);
}

function drawLists(shown) {
  const byCrew = new Map();
  for (const job of state.board.jobs) {
    if (!shown.has(job.id) || !job.crew) continue;
    if (!byCrew.has(job.crew)) byCrew.set(job.crew, []);
    byCrew.get(job.crew).push(job);
  }
  $("crew-list").replaceChildren(...state.board.crews.map((c) => crewItem(c, byCrew.get(c.code) || [])));
  $("queue-list").replaceChildren(...queueItems((j) => shown.has(j.id)));
}

// After a move or a live event: redraw only what changed — the jobs' markers (gone ones
// removed), the crews' lists and route lines, the queue's rows. A city's backlog is
// thousands of markers and rows; redrawing them all blocked the browser for seconds.
function redrawChanged(changed, crews) {
  // Adding or taking away a marker gathers a spread bubble (markercluster does so on every
  // change), which closes a popup open on one of its markers: it opens again below.
  const open = openNow();
  const f = filters();
  const isShown = (job) => visible(job, f);
  const adds = [];
  const restyled = [];
  for (const id of changed) {
    const job = jobById(id);
    const m = state.markers.get(id);
    if (job && onMap(job, f)) {
      if (m) { m.setIcon(icon(job)); m.options.title = label(job); restyled.push(m); }
      else { const fresh = marker(job); state.markers.set(id, fresh); adds.push(fresh); }
    } else if (m) { cluster.removeLayer(m); state.markers.delete(id); }
    redrawQueueRow(id, isShown);
  }
  if (adds.length) cluster.addLayers(adds);
  // The bubbles over restyled markers take their new crew colours.
  if (restyled.length) cluster.refreshClusters(restyled);
  const codes = new Set(crews);
  if (codes.size) {
    const byCrew = new Map([...codes].map((c) => [c, []]));
    for (const job of state.board.jobs) if (codes.has(job.crew) && isShown(job)) byCrew.get(job.crew).push(job);
    for (const code of codes) {
      const crew = state.board.crews.find((c) => c.code === code);
      const old = document.querySelector(`#crew-list > li[data-crew="${CSS.escape(code)}"]`);
      if (crew && old) old.replaceWith(crewItem(crew, byCrew.get(code)));
      drawRoute(code, f);
    }
  }
  // A popup open on a changed job shows it as it is now, with what was typed in it.
  for (const id of changed) {
    const m = state.markers.get(id);
    if (m?.isPopupOpen() && id === open?.id) {
      m.getPopup().update();
      putBackTyped(open.typed);
    }
  }
  state.shownSelected = new Set(state.selected);
  drawSelection();
  sayShown();
  reopen(open);
  root.dataset.version = String(state.board.version ?? "");
  window.dispatchPage.drawnAt = performance.now();
}

function sayShown() {
  const version = state.board.version ?? "—";
  say(state.board.version === null ? words["dispatch.no_plan"]
    : fill(words["dispatch.shown"], { shown: state.markers.size, total: state.board.jobs.length, version }));
}

function jobLine(job) {
  // A list item holding a toggle button: selection is its pressed state.
  const item = element("li", undefined, "job");
  item.dataset.job = job.id;
  const line = element("button", undefined, "job-line");
  line.type = "button";
  line.dataset.job = job.id;
  line.setAttribute("aria-pressed", String(state.selected.has(job.id)));
  if (state.selected.has(job.id)) line.classList.add("selected");
  if (job.eta) line.append(element("span", `${time.format(new Date(job.eta))} `, "eta"));
  line.append(element("span", label(job)));
  if (job.description) line.title = job.description;
  const r = risk(job);
  if (r) line.append(element("span", words[`sla.${r}`], `badge ${r}`));
  line.addEventListener("click", (event) => select(job.id, event.shiftKey));
  line.addEventListener("dblclick", () => openPopup(job.id));
  item.append(line);
  if (job.left_out) item.append(element("span", job.left_out, "why"));
  return item;
}

function draw() {
  if (!state.board) return;
  const open = openNow();
  // The open popup goes on to the job's new marker: one popup, not a second one fading in
  // while the first fades out (Leaflet takes a closed popup off the page 200 ms later).
  const openPopupLayer = open ? state.markers.get(open.id).getPopup() : null;
  const f = filters();
  const shown = new Set(state.board.jobs.filter((j) => visible(j, f)).map((j) => j.id));
  cluster.clearLayers();
  state.markers.clear();
  const markers = [];
  for (const job of state.board.jobs) {
    if (!shown.has(job.id) || !onMap(job, f)) continue;
    const m = marker(job);
    if (job.id === open?.id) m.bindPopup(openPopupLayer);
    state.markers.set(job.id, m);
    markers.push(m);
  }
  cluster.addLayers(markers);
  drawRoutes();
  drawLists(shown);
  // Markers and rows were drawn with the selection as it is: only the count is left.
  state.shownSelected = new Set(state.selected);
  drawSelection();
  sayShown();
  // A popup open before the redraw stays open on its (redrawn) job, with what was typed in it.
  reopen(open);
  root.dataset.version = String(state.board.version ?? "");
  root.dataset.state = "ready";
  window.dispatchPage.drawnAt = performance.now();
}

state.shownSelected = new Set();
function drawSelection() {
  const count = state.selected.size;
  $("selection-count").textContent = count ? fill(words["dispatch.selected"], { count }) : words["dispatch.none_selected"];
  // Redraw only the jobs whose selection changed since the last time.
  const changed = [...state.selected].filter((id) => !state.shownSelected.has(id))
    .concat([...state.shownSelected].filter((id) => !state.selected.has(id)));
  for (const id of changed) {
    const job = jobById(id);
    const m = state.markers.get(id);
    if (job && m) m.setIcon(icon(job));
    const on = state.selected.has(id);
    for (const line of document.querySelectorAll(`button.job-line[data-job="${id}"]`)) {
      line.classList.toggle("selected", on);
      line.setAttribute("aria-pressed", String(on));
    }
  }
  state.shownSelected = new Set(state.selected);
}

function fillSelects() {
  const ward = $("f-ward");
  if (ward.options.length === 1) {
    for (const [code, name] of state.board.wards) ward.append(new Option(`${name} (${code})`, code));
  }
  const crew = $("f-crew");
  const chosen = crew.value;
  while (crew.options.length > 2) crew.remove(2);
  const target = toCrew.value;
  toCrew.replaceChildren();
  for (const c of state.board.crews) {
    crew.append(new Option(c.name, c.code));
    if (c.working) toCrew.append(new Option(`${c.name} (${c.code})`, c.code));
  }
  crew.value = chosen;
  if (target) toCrew.value = target;
}

let loading = null;
async function load() {
  // One load at a time; a change during it asks for one more afterwards.
  if (loading) { loading.again = true; return loading.promise; }
  loading = { again: false };
  loading.promise = (async () => {
    try {
      const response = await fetch(`/api/v1/dispatch/board?date=${encodeURIComponent(state.day)}`, { credentials: "same-origin" });
      const data = await response.json();
      if (!response.ok) { say(fill(words["dispatch.failed"], { detail: problemText(data) }), true); return; }
      // Nothing changed (a poll, or an event about something this day does not show): leave
      // the map as it is, with any open popup and what was typed in it.
      const same = JSON.stringify({ ...data, generated_at: null });
      if (same === state.same) return;
      state.same = same;
      state.board = data;
      index();
      const ids = new Set(data.jobs.map((j) => j.id));
      for (const id of [...state.selected]) if (!ids.has(id)) state.selected.delete(id);
      fillSelects();
      draw();
      window.dispatchPage.loads += 1;
    } catch (error) {
      say(fill(words["dispatch.failed"], { detail: String(error) }), true);
    }
  })();
  await loading.promise;
  const again = loading.again;
  loading = null;
  if (again) await load();
}

// --- what changed: read only that, merge it into the board, redraw only that ----------------

// Ask the board for some jobs and some crews' jobs and routes (a partial answer).
async function partialBoard(ids, crews) {
  const query = new URLSearchParams({ date: state.day });
  for (const id of ids) query.append("id", String(id));
  for (const code of crews) query.append("crew", code);
  const response = await fetch(`/api/v1/dispatch/board?${query}`, { credentials: "same-origin" });
  const data = await response.json();
  if (!response.ok) throw new Error(problemText(data));
  return data;
}

// Past this many jobs or crews a partial read costs about what the whole board does (and
// the ids would make a long address).
const PARTIAL_JOBS = 600;
const PARTIAL_CREWS = 12;

// Read what changed — jobs by id, crews (their routes) by code — and redraw it. Returns false
// when it had to read the whole board instead.
async function refresh(ids, crews) {
  const codes = new Set(crews);
  for (const id of ids) { const j = jobById(id); if (j?.crew) codes.add(j.crew); }
  // Every job the page shows on those crews is asked for by id: one that left them (to the
  // queue, to another crew, closed) is answered as it is now, or missing when closed.
  const asked = new Set(ids);
  for (const job of state.board.jobs) if (job.crew && codes.has(job.crew)) asked.add(job.id);
  if (asked.size > PARTIAL_JOBS || codes.size > PARTIAL_CREWS) { state.same = null; await load(); return false; }
  if (!asked.size && !codes.size) return true;
  const data = await partialBoard([...asked], [...codes]);
  if (data.day !== state.day) return true;
  const { changed, touched } = merge(data, asked, codes);
  redrawChanged(changed, touched);
  state.same = null; // the next whole read draws, whatever it last saw
  window.dispatchPage.loads += 1;
  return true;
}

function merge(data, asked, codes) {
  const board = state.board;
  const changed = new Set();
  const touched = new Set(codes);
  for (const fresh of data.jobs) {
    const old = state.byId.get(fresh.id);
    if (old && JSON.stringify(old) === JSON.stringify({ ...old, ...fresh })) continue;
    changed.add(fresh.id);
    if (old?.crew) touched.add(old.crew);
    if (fresh.crew) touched.add(fresh.crew);
    if (old) Object.assign(old, fresh);
    else {
      // A new job goes where the board would have it: by due time.
      const at = board.jobs.findIndex((j) => j.due_at > fresh.due_at);
      board.jobs.splice(at < 0 ? board.jobs.length : at, 0, fresh);
      state.byId.set(fresh.id, fresh);
    }
  }
  const answered = new Set(data.jobs.map((j) => j.id));
  const gone = new Set([...asked].filter((id) => !answered.has(id) && state.byId.has(id)));
  if (gone.size) {
    for (const id of gone) {
      const job = state.byId.get(id);
      if (job.crew) touched.add(job.crew);
      state.byId.delete(id);
      state.selected.delete(id);
      changed.add(id);
    }
    board.jobs = board.jobs.filter((j) => !gone.has(j.id));
  }
  board.routes = board.routes.filter((r) => !codes.has(r.crew)).concat(data.routes);
  board.crews = data.crews;
  state.colours = new Map(board.crews.map((c) => [c.code, c.colour]));
  board.version = data.version;
  return { changed, touched };
}

// Live changes and what a commit leaves to read, gathered for a moment and read at once: a
// move is one plan event and an event per work order, a burst a crew's tablet sends when it
// comes back online is dozens.
const GATHER_MS = 250;
const pending = { ids: new Set(), crews: new Set(), whole: false, what: null };
let gatherTimer = null;
let flushing = false;

function soon({ ids = [], crews = [], whole = false, what = null } = {}) {
  for (const id of ids) pending.ids.add(id);
  for (const code of crews) pending.crews.add(code);
  pending.whole ||= whole;
  if (what) pending.what = what;
  clearTimeout(gatherTimer);
  gatherTimer = setTimeout(flush, GATHER_MS);
}

async function flush() {
  if (flushing) return; // the running flush reads what came meanwhile
  flushing = true;
  try {
    while (pending.whole || pending.ids.size || pending.crews.size || pending.what) {
      const ids = [...pending.ids];
      const crews = [...pending.crews];
      const { whole, what } = pending;
      Object.assign(pending, { ids: new Set(), crews: new Set(), whole: false, what: null });
      try {
        if (whole || !state.board || window.dispatchPage.whole) await load();
        else await refresh(ids, crews);
      } catch (error) {
        say(fill(words["dispatch.failed"], { detail: String(error) }), true);
      }
      if (what) $("live-status").textContent = fill(words["dispatch.updated"], { what });
      window.dispatchPage.liveDrawnAt = performance.now();
    }
  } finally {
    flushing = false;
  }
}

// --- selecting --------------------------------------------------------------------------------

function select(id, add) {
  if (add) {
    if (state.selected.has(id)) state.selected.delete(id); else state.selected.add(id);
  } else {
    state.selected = new Set([id]);
  }
  drawSelection();
}

function selectWhere(test) {
  const f = filters();
  for (const job of state.board.jobs) {
    if (onMap(job, f) && test(L.latLng(job.lat, job.lon))) state.selected.add(job.id);
  }
  drawSelection();
}

function inside(point, ring) {
  let hit = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const a = ring[i], b = ring[j];
    if ((a.lat > point.lat) !== (b.lat > point.lat)
      && point.lng < ((b.lng - a.lng) * (point.lat - a.lat)) / (b.lat - a.lat) + a.lng) hit = !hit;
  }
  return hit;
}

function setTool(tool) {
  state.tool = state.tool === tool ? null : tool;
  $("tool-box").setAttribute("aria-pressed", String(state.tool === "box"));
  $("tool-lasso").setAttribute("aria-pressed", String(state.tool === "lasso"));
  if (state.tool) map.dragging.disable(); else map.dragging.enable();
  map.getContainer().style.cursor = state.tool ? "crosshair" : "";
}

let drawing = null;
map.on("mousedown", (event) => {
  if (!state.tool) return;
  const start = event.latlng;
  const shape = state.tool === "box"
    ? L.rectangle(L.latLngBounds(start, start), { className: "select-shape", weight: 2, dashArray: "5 4", fillOpacity: 0.1 })
    : L.polygon([start], { className: "select-shape", weight: 2, dashArray: "5 4", fillOpacity: 0.1 });
  shape.addTo(map);
  drawing = { start, shape, points: [start] };
});
map.on("mousemove", (event) => {
  if (!drawing) return;
  if (state.tool === "box") drawing.shape.setBounds(L.latLngBounds(drawing.start, event.latlng));
  else { drawing.points.push(event.latlng); drawing.shape.setLatLngs(drawing.points); }
});
map.on("mouseup", () => {
  if (!drawing) return;
  const { shape, points } = drawing;
  drawing = null;
  if (state.tool === "box") { const bounds = shape.getBounds(); selectWhere((p) => bounds.contains(p)); }
  else if (points.length > 2) selectWhere((p) => inside(p, points));
  shape.remove();
  setTool(state.tool);
});

// --- moving -----------------------------------------------------------------------------------

function moveBody(crew) {
  return { plan_version: state.board.version, work_order_ids: [...state.selected], to_crew: crew };
}

function previewRoute(route, moved, tag) {
  const box = element("div", undefined, "preview-crew");
  box.dataset.crew = route.crew;
  box.dataset.when = tag;
  box.append(element("h3", `${route.crew_name} (${route.crew}) — ${words[`dispatch.${tag}`]}`));
  const list = element("ol");
  for (const stop of route.stops) {
    const job = jobById(stop.work_order_id);
    const late = new Date(stop.eta) > new Date(stop.due_at);
    const item = element("li", `${time.format(new Date(stop.eta))} #${stop.work_order_id} ${job ? job.category_name : stop.category}`);
    item.dataset.job = stop.work_order_id;
    if (moved.has(stop.work_order_id)) item.classList.add("moved");
    if (late) item.append(element("span", words["sla.late"], "badge late"));
    list.append(item);
  }
  box.append(list);
  return box;
}

function lateness(title, items, id) {
  const box = element("section");
  box.id = id;
  box.append(element("h3", title));
  const list = element("ul");
  for (const x of items) {
    const eta = x.eta_after ?? x.eta_before;
    list.append(element("li", `#${x.work_order_id} ${words["dispatch.due"]} ${time.format(new Date(x.due_at))}`
      + (x.eta_after ? ` · ${words["dispatch.eta"]} ${time.format(new Date(x.eta_after))}` : eta ? "" : "")));
  }
  box.append(list);
  return box;
}

async function preview(crew) {
  if (!state.selected.size || !state.board?.version) { say(words["dispatch.none_selected"], true); return; }
  const body = moveBody(crew);
  const moved = new Set(body.work_order_ids);
  $("preview-body").replaceChildren();
  $("preview-status").textContent = words["dispatch.preview_running"];
  $("preview-status").classList.remove("problem");
  $("commit").disabled = true;
  if (!dialog.open) dialog.showModal();
  const answer = await api("POST", `/api/v1/plans/${state.day}/moves/preview`, body);
  if (!answer.ok) { await refused(answer, body); return; }
  state.preview = { body, answer: answer.data };
  const out = $("preview-body");
  // What matters first: breaches caused or avoided, and what no longer fits; then the routes.
  const breaches = [...answer.data.breaches_caused, ...answer.data.breaches_avoided];
  if (!breaches.length) out.append(element("p", words["dispatch.no_breach"], "no-breach"));
  if (answer.data.breaches_caused.length) out.append(lateness(words["dispatch.caused"], answer.data.breaches_caused, "caused"));
  if (answer.data.breaches_avoided.length) out.append(lateness(words["dispatch.avoided"], answer.data.breaches_avoided, "avoided"));
  if (answer.data.left_out.length) {
    const left = element("section");
    left.id = "left-out";
    left.append(element("h3", words["dispatch.left_out"]));
    const list = element("ul");
    for (const u of answer.data.left_out) list.append(element("li", `#${u.work_order_id}: ${u.detail}`));
    left.append(list);
    out.append(left);
  }
  const routes = element("div", undefined, "preview-routes");
  for (const route of answer.data.after) routes.append(previewRoute(route, moved, "after"));
  out.append(routes);
  previewLayer.clearLayers();
  for (const route of answer.data.after) {
    if (!route.line) continue;
    L.polyline(route.line.coordinates.map(([x, y]) => [y, x]), {
      color: crewColour(route.crew), weight: 5, dashArray: "8 6", opacity: 0.9, interactive: false,
    }).addTo(previewLayer);
  }
  $("preview-status").textContent = "";
  $("commit").disabled = false;
  $("commit").focus();
}

async function refused(answer, body) {
  const statusLine = $("preview-status");
  statusLine.classList.add("problem");
  if (answer.status === 409 && answer.data?.code === "stale_plan") {
    statusLine.textContent = fill(words["dispatch.conflict"], { version: answer.data.current_version, seen: body.plan_version });
    say(statusLine.textContent, true);
    await load();
  } else {
    statusLine.textContent = fill(words["dispatch.refused"], { detail: problemText(answer.data) });
  }
  $("commit").disabled = true;
}

async function commit() {
  if (!state.preview) return;
  const { body } = state.preview;
  $("commit").disabled = true;
  window.dispatchPage.committedAt = performance.now();
  const answer = await api("POST", `/api/v1/plans/${state.day}/moves`, body);
  if (!answer.ok) { await refused(answer, body); return; }
  window.dispatchPage.moved = answer.data; // the committed plan: what the bench waits to see drawn
  closePreview();
  if (window.dispatchPage.whole) {
    // The way the page used to do it (the bench's baseline): read and redraw the whole board.
    state.same = null;
    await load();
    window.dispatchPage.movedDrawnAt = performance.now();
    say(fill(words["dispatch.moved"], { version: answer.data.version }));
    return;
  }
  // The move's answer is the whole new plan: draw what it changed at once, then read those
  // jobs and crews again for what the plan does not carry (queue reasons, SLA clocks).
  const { changed, crews } = applyPlan(answer.data, body);
  redrawChanged(changed, crews);
  window.dispatchPage.movedDrawnAt = performance.now();
  say(fill(words["dispatch.moved"], { version: answer.data.version }));
  soon({ ids: changed, crews });
}

function applyPlan(plan, body) {
  const board = state.board;
  const placed = new Map();
  for (const route of plan.routes) {
    for (const stop of route.stops) placed.set(stop.work_order_id, { crew: route.crew, stop });
  }
  const left = new Map(plan.left_out.map((u) => [u.work_order_id, u.detail]));
  const moved = new Set(body.work_order_ids);
  const changed = [];
  const crews = new Set();
  for (const job of board.jobs) {
    const was = [job.crew, job.seq, job.eta, job.left_out, job.queued].join("|");
    const crewBefore = job.crew;
    const at = placed.get(job.id);
    if (at) {
      Object.assign(job, { crew: at.crew, seq: at.stop.seq, eta: at.stop.eta, locked: at.stop.locked,
        late: new Date(at.stop.eta) > new Date(job.due_at), queued: null, queued_detail: null, left_out: null });
    } else {
      Object.assign(job, { seq: null, eta: null, late: false, left_out: left.get(job.id) ?? null });
      if (moved.has(job.id)) {
        job.crew = body.to_crew;
        if (body.to_crew === null) { job.queued = "dispatcher"; job.queued_detail = body.reason ?? null; }
      }
    }
    if ([job.crew, job.seq, job.eta, job.left_out, job.queued].join("|") !== was) {
      changed.push(job.id);
      if (crewBefore) crews.add(crewBefore);
      if (job.crew) crews.add(job.crew);
    }
  }
  board.routes = plan.routes.map((r) => ({
    crew: r.crew, line: r.line ? r.line.coordinates : null, depart: r.depart, back: r.back,
    stops: r.stops.map((s) => s.work_order_id),
  }));
  const busy = new Map(plan.routes.map((r) => [r.crew, (new Date(r.back) - new Date(r.depart)) / 1000]));
  for (const crew of board.crews) {
    crew.busy_s = busy.get(crew.code) ?? 0;
    crew.free_s = Math.max(0, crew.shift_s - crew.busy_s);
  }
  board.version = plan.version;
  return { changed, crews };
}

function closePreview() {
  state.preview = null;
  previewLayer.clearLayers();
  if (dialog.open) dialog.close();
}

async function replanCrews(crews) {
  const answer = await api("POST", `/api/v1/plans/${state.day}/replan`, { plan_version: state.board.version, crews });
  if (!answer.ok) {
    if (answer.status === 409) await load();
    say(answer.status === 409 ? fill(words["dispatch.conflict"], { version: answer.data?.current_version, seen: state.board.version }) : fill(words["dispatch.refused"], { detail: problemText(answer.data) }), true);
    return;
  }
  await refresh([], crews);
}

// --- a job's popup ----------------------------------------------------------------------------

// The fields of the open popup (a merge number, a hold reason) by their label, and their values:
// a redraw builds the popup again, and must not throw away what the dispatcher was typing.
function popupFields() {
  const box = document.querySelector(".leaflet-popup .dispatch-popup");
  return box ? [...box.querySelectorAll("input, select, textarea")] : [];
}
const fieldKey = (field) => field.getAttribute("aria-label") ?? field.id;

function typedInPopup() {
  return popupFields().filter((f) => f.value && f.type !== "hidden").map((f) => [fieldKey(f), f.value]);
}

function putBackTyped(typed) {
  if (!typed?.length) return;
  const fields = popupFields();
  for (const [key, value] of typed) {
    const field = fields.find((f) => fieldKey(f) === key);
    if (field && !field.value) field.value = value;
  }
}

// The job whose popup is open, and what was typed in it: what a redraw puts back.
function openNow() {
  const id = [...state.markers].find(([, m]) => m.isPopupOpen())?.[0];
  return id === undefined ? null : { id, typed: typedInPopup() };
}

// A popup opens only once the map has settled on its job. Leaflet and markercluster end a
// zoom, a re-cluster and a bubble's spreading with events that can come late or from an earlier
// move (markercluster's own zoomToShowLayer called back on such a stray event mid-zoom, and the
// zoom's late end took the marker back into its bubble: the popup flashed and closed). So the
// page moves the map itself, without animation (the move is done when the call returns), then
// waits until nothing is moving and looks where the marker is: on the map → open; in a bubble →
// spread it (at the zoom where no bubble is left, or, for a redraw, at the dispatcher's zoom) and
// look again. One job at a time: a later ask replaces an earlier one.
let showing = null; // { id, typed, keepView, until, moves, timer }

// Neither Leaflet nor markercluster says so in public: a zoom or pan animating, or markercluster
// splitting, merging, spreading or gathering bubbles (what its zoomToShowLayer reads too).
const moving = () => Boolean(map._animatingZoom || map._panAnim?._inProgress || cluster._inZoomAnimation);

// ``keepView``: a popup a redraw closed opens again where the dispatcher is looking, without
// moving the map (a bubble the marker went back into is spread again, as it was).
function openPopup(id, { typed = null, keepView = false } = {}) {
  // A queued job asked for (its row double-clicked) while the queue's layer is off: on again.
  const wanted = jobById(id);
  if (wanted && !wanted.crew && !state.queueOnMap && visible(wanted, filters())) map.addLayer(queueLayer);
  if (!state.markers.has(id)) return;
  if (showing) clearTimeout(showing.timer);
  showing = { id, typed, keepView, until: Date.now() + 15000, moves: 0, timer: null };
  showStep();
}
window.dispatchPage.openPopup = openPopup;

// After a redraw or an action: the popup that was open opens again where the dispatcher is
// looking — unless the dispatcher has meanwhile asked for another job's popup, still on its way.
function reopen(open) {
  if (!open || !state.markers.has(open.id) || (showing && showing.id !== open.id)) return;
  openPopup(open.id, { typed: open.typed, keepView: true });
}

function showStep() {
  const s = showing;
  if (!s) return;
  clearTimeout(s.timer);
  const m = state.markers.get(s.id);
  if (!m || Date.now() > s.until) { showing = null; return; }
  if (m.isPopupOpen()) { showing = null; putBackTyped(s.typed); return; } // still (or already) open
  // Look again in a moment whatever comes: a busy browser can drop an animation's end.
  s.timer = setTimeout(showStep, 250);
  // Still moving, or the marker not clustered yet (markercluster adds a long list in chunks).
  if (moving() || !m.__parent) return;
  const here = map.getBounds();
  if (m._icon && (s.keepView || s.moves >= 3 || here.contains(m.getLatLng()))) {
    clearTimeout(s.timer);
    showing = null;
    m.openPopup();
    putBackTyped(s.typed);
    return;
  }
  const parent = cluster.getVisibleParent(m);
  const bubble = parent && parent !== m && parent._icon && (s.keepView || here.contains(parent.getLatLng())) ? parent : null;
  // The zoom at which the marker stands alone (its deepest bubble's, one more).
  const alone = Math.min(m.__parent._zoom + 1, map.getMaxZoom());
  if (bubble && (s.keepView || alone <= Math.round(map.getZoom()))) {
    bubble.spiderfy(); // its "spiderfied" (and "animationend") look again
    return;
  }
  if (s.keepView || s.moves >= 3) return; // not on screen: the dispatcher's map is not moved
  s.moves += 1;
  map.setView(m.getLatLng(), Math.max(alone, map.getZoom()), { animate: false });
  setTimeout(showStep, 0);
}
// What can end a wait: look again (after the event's other listeners, markercluster's among them).
const showSoon = () => { if (showing) setTimeout(showStep, 0); };
map.on("zoomend moveend", showSoon);
cluster.on("animationend spiderfied unspiderfied", showSoon);
// The dispatcher taking the map in hand (a click or a drag outside the popup's content, its
// close button among them; the wheel; Escape) or opening another job's popup ends a wait.
const stopShowing = (event) => {
  if (event.type === "keydown" ? event.key === "Escape" : !event.target.closest?.(".leaflet-popup-content")) showing = null;
};
for (const type of ["pointerdown", "wheel", "keydown"]) {
  map.getContainer().addEventListener(type, stopShowing, { capture: true, passive: true });
}
map.on("popupopen", (event) => { if (showing && event.popup._source?.jobId !== showing.id) showing = null; });

function button(text, onClick) {
  const b = element("button", text);
  b.type = "button";
  b.addEventListener("click", onClick);
  return b;
}

// What the last popup action said, shown again in that job's popup once the board has been
// reloaded (a reload redraws the markers, and with them the open popup).
state.notice = null;

async function act(promise, job, move = false) {
  const answer = await promise;
  state.notice = {
    job: job.id,
    text: answer.ok ? words["dispatch.done"] : fill(words["dispatch.refused"], { detail: problemText(answer.data) }),
    move: move && answer.ok ? answer.data : state.notice?.job === job.id ? state.notice.move : null,
  };
  if (answer.ok || answer.status === 409) {
    // A merge, split or undo moves reports and work between incidents the page cannot guess:
    // read the whole board. Anything else changed this job (and its crew's route) only.
    if (move) { state.same = null; await load(); } else await refresh([job.id], []);
  }
  // The job's popup says how it went: updated when open; else (closed by the redraw and not
  // open again yet, or the job drawn anew) opened where the dispatcher is looking.
  const m = state.markers.get(job.id);
  if (m?.isPopupOpen()) m.getPopup().update();
  if (m) reopen({ id: job.id, typed: null });
  else say(state.notice.text, !answer.ok);
  return answer;
}

function popup(job) {
  const box = element("div", undefined, "dispatch-popup");
  box.append(element("h2", `#${job.id} · ${job.category_name}`));
  box.append(element("p", `${statusWord(job.status)}${job.crew ? ` · ${job.crew}` : ""}${job.ward ? ` · ${words["dispatch.ward"] ?? ""} ${job.ward}` : ""}`, "job-status"));
  if (job.tracking_id) box.append(element("p", job.tracking_id, "tracking"));
  if (job.address) box.append(element("p", job.address, "address"));
  box.append(element("p", job.description, "description"));
  const facts = [`${words["dispatch.due"]} ${time.format(new Date(job.due_at))}`];
  if (job.eta) facts.push(`${words["dispatch.eta"]} ${time.format(new Date(job.eta))}`);
  const r = risk(job);
  if (r) facts.push(words[`sla.${r}`]);
  box.append(element("p", facts.join(" · ")));
  if (job.queued === "crew_cant_do") box.append(element("p", fill(words["dispatch.cant_do"], { why: job.queued_detail ?? "" }), "why cant-do"));
  else if (job.queued_detail) box.append(element("p", job.queued_detail, "why"));
  if (job.left_out) box.append(element("p", job.left_out, "why"));
  const actions = element("div", undefined, "actions");
  if (job.seq !== null) {
    actions.append(button(job.locked ? words["dispatch.unlock"] : words["dispatch.lock"], () =>
      act(api("POST", `/api/v1/plans/${state.day}/stops/${job.id}/lock`, { plan_version: state.board.version, locked: !job.locked }), job)));
  }
  if (job.status === "on_hold") {
    actions.append(button(words["dispatch.resume"], () =>
      act(api("POST", `/api/v1/work-orders/${job.id}/resume`, { expected_version: job.version }), job)));
  } else {
    const reason = element("input");
    reason.setAttribute("aria-label", words["dispatch.hold_reason"]);
    reason.placeholder = words["dispatch.hold_reason"];
    actions.append(reason, button(words["dispatch.hold"], () =>
      act(api("POST", `/api/v1/work-orders/${job.id}/hold`, { reason: reason.value || words["dispatch.hold"], expected_version: job.version }), job)));
  }
  box.append(actions);
  // Appointment: a window the work must start in, typed and shown on the city's clocks (its
  // zone named on the fields), not the browser's.
  const appt = element("fieldset", undefined, "appointment");
  appt.append(element("legend", `${words["dispatch.appointment"]} (${zone})`));
  if (job.appointment) {
    appt.append(element("p", `${dayTime.format(new Date(job.appointment[0]))} – ${time.format(new Date(job.appointment[1]))}`, "appointment-now"));
  }
  const field = (key, value) => {
    const input = element("input");
    input.type = "datetime-local";
    input.id = `appt-${key}-${job.id}`;
    if (value) input.value = wallOf(new Date(value));
    const tag = element("label", words[`dispatch.appointment_${key}`]);
    tag.htmlFor = input.id;
    appt.append(tag, input);
    return input;
  };
  const from = field("from", job.appointment?.[0]);
  const to = field("to", job.appointment?.[1]);
  const apptActions = element("div", undefined, "actions");
  apptActions.append(
    button(words["dispatch.appointment_set"], () => {
      if (!from.value || !to.value) { say(words["dispatch.appointment_missing"], true); from.focus(); return; }
      act(api("PUT", `/api/v1/dispatch/work-orders/${job.id}/appointment`,
        { start: instantOf(from.value).toISOString(), end: instantOf(to.value).toISOString() }), job);
    }),
    button(words["dispatch.appointment_clear"], () => act(api("DELETE", `/api/v1/dispatch/work-orders/${job.id}/appointment`), job)));
  appt.append(apptActions);
  box.append(appt);
  // What crews kept about this job when their tablet's action was refused: notes, photos.
  const kept = element("section", undefined, "kept");
  box.append(kept);
  showKept(job, kept);
  // Duplicates: the incident's reports (why each matched), merge another in, split, undo.
  const dup = element("div", undefined, "actions");
  const other = element("input");
  other.inputMode = "numeric";
  other.setAttribute("aria-label", words["dispatch.merge_into"]);
  other.placeholder = words["dispatch.merge_into"];
  const reports = element("div", undefined, "reports");
  dup.append(
    button(words["dispatch.reports"], () => showReports(job, reports)),
    other,
    button(words["dispatch.merge"], () => act(api("POST", `/api/v1/staff/incidents/${job.incident_id}/merge`,
      { source_incident_id: Number(other.value), reason: "merged on the dispatcher's map" }), job, true)),
  );
  box.append(dup, reports);
  if (state.notice?.job === job.id) {
    const line = element("p", state.notice.text, "popup-status");
    line.setAttribute("role", "status");
    box.append(line);
    const move = state.notice.move;
    if (move && !move.undone_at) box.append(undoButton(move, job));
  }
  return box;
}

// The crews' kept notes and photos, read once for all jobs and again after a change.
let keptList = null;
async function showKept(job, out) {
  keptList ??= api("GET", "/api/v1/crew/kept?limit=500").then((a) => (a.ok ? a.data : []));
  const mine = (await keptList).filter((k) => k.work_order_id === job.id);
  if (!mine.length) return;
  out.append(element("h3", words["dispatch.kept"]));
  const list = element("ul");
  for (const k of mine) {
    const item = element("li");
    item.append(element("p", `${dayTime.format(new Date(k.at))} · ${k.crew ?? k.by} · ${words[`dispatch.kept_${k.action}`] ?? k.action}`, "kept-when"));
    if (k.note) item.append(element("p", k.note, "kept-note"));
    if (k.refusal) item.append(element("p", fill(words["dispatch.kept_refused"], { why: k.refusal }), "kept-refusal"));
    if (k.photo_url) {
      const img = element("img");
      img.src = k.photo_url;
      img.alt = fill(words["dispatch.kept_photo"], { crew: k.crew ?? k.by });
      img.loading = "lazy";
      item.append(img);
    }
    list.append(item);
  }
  out.append(list);
}

function statusWord(code) {
  return words[`status.${code}`] ?? code;
}

function undoButton(move, job) {
  return button(`${words["dispatch.undo"]} (${move.kind} ${move.id})`, () =>
    act(api("POST", `/api/v1/staff/moves/${move.id}/undo`, { reason: "undone on the dispatcher's map" }), job, true));
}

async function showReports(job, out) {
  const answer = await api("GET", `/api/v1/staff/incidents/${job.incident_id}/reports`);
  out.replaceChildren();
  if (!answer.ok) { out.append(element("p", fill(words["dispatch.refused"], { detail: problemText(answer.data) }))); return; }
  const list = element("ul");
  for (const report of answer.data.reports) {
    const why = report.dedup ? `${report.dedup.decision}${report.dedup.score !== null ? ` ${report.dedup.score.toFixed(2)}` : ""}` : "";
    const item = element("li", `${report.tracking_id} · ${Math.round(report.distance_m)} m · ${why}`);
    if (answer.data.reports.length > 1) {
      item.append(button(words["dispatch.split"], async () => {
        await act(api("POST", `/api/v1/staff/reports/${encodeURIComponent(report.tracking_id)}/split`, { reason: "split on the dispatcher's map" }), job, true);
      }));
    }
    list.append(item);
  }
  out.append(list);
  for (const move of answer.data.moves) if (!move.undone_at) out.append(undoButton(move, job));
}

// --- controls, keys, live ---------------------------------------------------------------------

form.addEventListener("input", (event) => {
  if (event.target === dayInput) return;
  draw();
});
form.addEventListener("submit", (event) => event.preventDefault());
dayInput.addEventListener("change", () => { state.day = dayInput.value; state.selected.clear(); load(); });
$("tool-box").addEventListener("click", () => setTool("box"));
$("tool-lasso").addEventListener("click", () => setTool("lasso"));
$("clear-selection").addEventListener("click", () => { state.selected.clear(); drawSelection(); });
$("give").addEventListener("click", () => preview(toCrew.value));
$("to-queue").addEventListener("click", () => preview(null));
$("commit").addEventListener("click", commit);
$("cancel").addEventListener("click", closePreview);
dialog.addEventListener("close", () => { state.preview = null; previewLayer.clearLayers(); });
$("plan-day").addEventListener("click", async () => {
  const answer = await api("POST", `/api/v1/plans?date=${state.day}`, state.board?.version ? { plan_version: state.board.version } : undefined);
  if (!answer.ok) say(fill(words["dispatch.refused"], { detail: problemText(answer.data) }), true);
  await load();
});
$("replan-day").addEventListener("click", () => replanCrews(state.board.crews.filter((c) => c.working).map((c) => c.code)));

document.addEventListener("keydown", (event) => {
  const typing = event.target.closest?.("input, select, textarea");
  if (event.key === "Escape" && !dialog.open) {
    if (state.tool) setTool(state.tool); else { state.selected.clear(); drawSelection(); }
    return;
  }
  if (typing || dialog.open || event.ctrlKey || event.metaKey || event.altKey) return;
  const keys = { "/": () => $("search").focus(), b: () => setTool("box"), l: () => setTool("lasso"),
    g: () => preview(toCrew.value), q: () => preview(null) };
  if (keys[event.key]) { event.preventDefault(); keys[event.key](); }
});

// Live: a change another dispatcher, a crew or a new report makes reads only what it names
// (the events carry ids: a work order, an incident, a plan's crews) and redraws only that.
// The board is read whole on (re)connection, since changes while the stream was down are
// not replayed; the first read waits for the stream, so nothing falls between the two.
const codeOf = (crewId) => state.board?.crews.find((c) => c.id === crewId)?.code;
let started = false;
function start() {
  if (started) return;
  started = true;
  load();
}
const live = root.dataset.live ? import(root.dataset.live) : Promise.reject(new Error("no push channel"));
live.then(({ listen }) => {
  listen({
    open: () => { if (started) soon({ whole: true }); else start(); },
    work_order: (d) => {
      keptList = null; // a crew's kept note is an event on its work order
      const code = d.crew_id ? codeOf(d.crew_id) : undefined;
      soon({ ids: [d.id], crews: code ? [code] : [], what: `#${d.id}` });
    },
    plan: (d) => {
      if (d.day && d.day !== state.day) return;
      const codes = (d.crew_ids || []).map(codeOf);
      const whole = d.action === "planned" || !state.board?.version || !codes.length || codes.includes(undefined);
      soon({ crews: whole ? [] : codes, whole, what: words["dispatch.crew"] });
    },
    incident: (d) => {
      const ids = (state.board?.jobs || []).filter((j) => j.incident_id === d.id).map((j) => j.id);
      soon({ ids, what: `${d.id}` });
    },
  });
  $("live-status").textContent = words["dispatch.live"];
  setTimeout(start, 2000); // a stream slow to open does not hold the page back
}).catch(() => { start(); setInterval(load, 4000); });
