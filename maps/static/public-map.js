// The public map's live part: markers from /api/v1/map/incidents into folium's marker
// cluster, the category and status filter, popups, the basemap, and a note when tiles fail.
// Every text from the server reaches the page through textContent, never as HTML.
import { drawBasemap } from "./basemap.js";
import { element } from "./dom.js";

const root = document.getElementById("public-map");
const map = window[root.dataset.map];
const cluster = window[root.dataset.cluster];
const tiles = root.dataset.tiles ? window[root.dataset.tiles] : null;
const categories = JSON.parse(root.dataset.categories);
const words = JSON.parse(root.dataset.words);
const lang = root.dataset.lang;
const status = document.getElementById("map-status");
const tilesStatus = document.getElementById("tiles-status");
const filter = document.getElementById("map-filter");
const dateFormat = new Intl.DateTimeFormat(lang, { dateStyle: "medium" });

map.getContainer().setAttribute("aria-label", root.getAttribute("aria-label"));
// Leaflet's zoom buttons speak English: give them the page's words.
for (const [selector, key] of [[".leaflet-control-zoom-in", "zoom.in"], [".leaflet-control-zoom-out", "zoom.out"]]) {
  const button = map.getContainer().querySelector(selector);
  if (button) { button.title = words[key]; button.setAttribute("aria-label", words[key]); }
}

function fill(template, values) {
  return template.replace(/\{(\w+)\}/g, (_, key) => String(values[key]));
}

function popup(incident) {
  const box = element("div", undefined, "popup");
  box.append(
    element("h2", incident.category_name),
    element("p", `${incident.fixed ? words["state.fixed"] : words["state.open"]} · ${incident.status_label}`, "popup-status"),
    element("p", incident.description || words["popup.no_description"], "popup-description"),
  );
  const facts = element("dl");
  const tracking = element("a", incident.tracking_id, "popup-tracking");
  tracking.href = `/track/${encodeURIComponent(incident.tracking_id)}`;
  for (const [term, value] of [
    [words["popup.reported"], element("dd", dateFormat.format(new Date(incident.opened_at)))],
    [words["popup.reports"], element("dd", String(incident.report_count))],
    [words["popup.tracking"], element("dd")],
  ]) facts.append(element("dt", term), value);
  facts.lastChild.append(tracking);
  box.append(facts);
  return box;
}

function marker(incident) {
  const colour = categories[incident.category]?.colour ?? 7;
  const state = incident.fixed ? "fixed" : "open";
  const icon = L.divIcon({ className: `pin c${colour} state-${state}`, iconSize: [22, 22], html: "" });
  const label = `${incident.category_name}: ${incident.fixed ? words["state.fixed"] : words["state.open"]}`;
  const m = L.marker([incident.lat, incident.lon], { icon, title: label, keyboard: true });
  m.bindPopup(() => popup(incident), { maxWidth: 280 });
  m.on("add", () => {
    const icon = m.getElement();
    icon?.setAttribute("aria-label", label);
    if (icon) icon.dataset.tracking = incident.tracking_id;
  });
  m.incident = incident;
  return m;
}

let markers = [];

function applyFilter() {
  const data = new FormData(filter);
  const chosen = new Set(data.getAll("category"));
  const states = new Set(data.getAll("state"));
  const shown = markers.filter(
    (m) => chosen.has(m.incident.category) && states.has(m.incident.fixed ? "fixed" : "open"),
  );
  cluster.clearLayers();
  cluster.addLayers(shown);
  status.textContent = fill(words["map.shown"], { shown: shown.length, total: markers.length });
  root.dataset.shown = String(shown.length);
}

async function loadIncidents() {
  const response = await fetch(root.dataset.incidents);
  if (!response.ok) throw new Error(`incidents: HTTP ${response.status}`);
  const body = await response.json();
  const statusWords = JSON.parse(root.dataset.statuses);
  markers = body.incidents.map((i) =>
    marker({ ...i, status_label: statusWords[i.status] ?? i.status }),
  );
  applyFilter();
}

// On a phone the filter starts folded, so the map is on the first screen.
if (!window.matchMedia("(min-width: 1000px)").matches) document.getElementById("filter-box").open = false;

filter.addEventListener("change", applyFilter);
filter.addEventListener("submit", (event) => event.preventDefault());

if (tiles) {
  // Tiles start loading in folium's script, before this module runs: count the ones that
  // already failed (a broken image is complete with no width), then listen for more.
  const tilesFailed = () => { tilesStatus.textContent = words["map.tiles_failed"]; };
  const images = tiles.getContainer()?.querySelectorAll("img") ?? [];
  if ([...images].some((img) => img.complete && img.naturalWidth === 0)) tilesFailed();
  tiles.on("tileerror", tilesFailed);
}

Promise.allSettled([
  drawBasemap(map, root.dataset.basemap),
  loadIncidents().catch((error) => {
    status.textContent = words["map.failed"];
    throw error;
  }),
]).then((results) => {
  root.dataset.ready = results.every((r) => r.status === "fulfilled") ? "yes" : "partly";
});
