// The planner's page: the ward table from the analytics API (/wards.geojson, the signed-in
// session's cookie) drawn as a choropleth with a quantile legend (or a diverging one for the
// gap from the city), a sortable table, a ward's weekly trend as an inline SVG chart, the
// export links with the current filters, and the hotspot areas and the heat of reports
// (folium's Leaflet.heat layer, weighted cells from /heat) on demand.
// Every text from the data reaches the page through textContent, never as HTML.
import { element } from "./dom.js";

const root = document.getElementById("planner-map");
const map = window[root.dataset.map];
const tiles = root.dataset.tiles ? window[root.dataset.tiles] : null;
const heat = window[root.dataset.heat];
const HEAT_GRADIENT = JSON.parse(root.dataset.heatGradient);
const words = JSON.parse(root.dataset.words);
const api = root.dataset.api;
const lang = root.dataset.lang;
const form = document.getElementById("planner-filter");
const status = document.getElementById("planner-status");
const legend = document.getElementById("legend-classes");
const table = document.getElementById("ward-table");
const trendBox = document.getElementById("trend");
const SVG = "http://www.w3.org/2000/svg";

// Shares (0…1) are shown as percentages; hours with one decimal; counts whole.
const SHARES = new Set(["sla_breach_share", "on_time_score", "reopen_share"]);
const COUNTS = new Set(["reports", "backlog"]);
const SEQUENTIAL = ["#fef0d9", "#fdcc8a", "#fc8d59", "#e34a33", "#b30000"];
const DIVERGING = ["#2166ac", "#92c5de", "#f7f7f7", "#f4a582", "#b2182b"];
const TOO_FEW = "#c9ced6";
// Hotspots in a hue of their own (violet), apart from both legends' reds and blues.
const HOT_STYLE = { color: "#4c1d95", weight: 2, fillColor: "#7c3aed", fillOpacity: 0.3 };

map.getContainer().setAttribute("aria-label", root.getAttribute("aria-label"));
for (const [selector, key] of [[".leaflet-control-zoom-in", "zoom.in"], [".leaflet-control-zoom-out", "zoom.out"]]) {
  const button = map.getContainer().querySelector(selector);
  if (button) { button.title = words[key]; button.setAttribute("aria-label", words[key]); }
}
if (tiles) {
  tiles.on("tileerror", () => { status.textContent = words["map.tiles_failed"]; });
}

function fill(template, values) {
  return template.replace(/\{(\w+)\}/g, (_, key) => String(values[key]));
}

function format(measure, value, signed = false) {
  if (value === null || value === undefined) return words["planner.no_value"];
  const share = SHARES.has(measure);
  const digits = COUNTS.has(measure) ? 0 : share || measure.endsWith("_h") ? 1 : 2;
  const number = new Intl.NumberFormat(lang, {
    minimumFractionDigits: digits, maximumFractionDigits: digits,
    signDisplay: signed ? "exceptZero" : "auto",
  }).format(share ? value * 100 : value);
  const unit = words[`unit.${measure}`];
  if (!unit) return number;
  return unit === "%" ? `${number} %` : `${number} ${unit}`;
}

const state = { data: null, sort: { key: "value", dir: -1 }, chosen: null, layer: null, hot: null, heat: null };

function measure() { return form.elements.measure.value; }

/** The view actually drawn: counts have no gap from the city. */
function view() {
  const asked = form.elements.view.value;
  return asked === "gap" && COUNTS.has(measure()) ? "value" : asked;
}

function query(extra = {}) {
  const params = new URLSearchParams();
  for (const name of ["from", "to", "category", "group"]) {
    const value = form.elements[name].value;
    if (value) params.set(name, value);
  }
  for (const [k, v] of Object.entries(extra)) params.set(k, v);
  return params.toString();
}

/** A ward is compared (coloured, ranked) only with enough cases over the whole period. */
function ranked(p) { return !p.too_few && p.whole_period; }

function shown(p) {
  const m = measure();
  return view() === "gap" ? p[`gap_${m}`] : p[m];
}

/** Class breaks: quantiles of the ranked wards' values, or a scale centred on the city. */
function classes(features) {
  const values = features.map((f) => f.properties).filter(ranked).map(shown)
    .filter((v) => v !== null && v !== undefined).sort((a, b) => a - b);
  if (view() === "gap") {
    const reach = Math.max(...values.map(Math.abs), 0) || 1;
    const edges = [-reach, -reach / 2, -reach / 10, reach / 10, reach / 2, reach];
    return { colours: DIVERGING, edges, diverging: true };
  }
  if (!values.length) return { colours: [], edges: [], diverging: false };
  const q = (p) => values[Math.min(values.length - 1, Math.floor(p * values.length))];
  const edges = [values[0]];
  for (const p of [0.2, 0.4, 0.6, 0.8]) if (q(p) > edges[edges.length - 1]) edges.push(q(p));
  edges.push(values[values.length - 1]);
  if (edges.length === 2 && edges[0] === edges[1]) edges.pop();
  const n = Math.max(1, edges.length - 1);
  const colours = n === 1 ? [SEQUENTIAL[2]] : SEQUENTIAL.slice(SEQUENTIAL.length - n);
  return { colours, edges, diverging: false };
}

function colourOf(scale, value) {
  if (value === null || value === undefined || !scale.colours.length) return null;
  for (let i = 1; i < scale.edges.length - 1; i += 1) {
    if (value < scale.edges[i]) return scale.colours[i - 1];
  }
  return scale.colours[scale.colours.length - 1];
}

function drawLegend(scale) {
  legend.replaceChildren();
  const m = measure();
  const signed = scale.diverging;
  scale.colours.forEach((colour, i) => {
    const item = element("li");
    const swatch = element("span", undefined, "legend-swatch");
    swatch.style.background = colour;
    swatch.setAttribute("aria-hidden", "true");
    const low = scale.edges[i];
    const high = scale.edges[Math.min(i + 1, scale.edges.length - 1)];
    let text = low === high ? format(m, low, signed) : `${format(m, low, signed)} – ${format(m, high, signed)}`;
    if (signed && i === 0) text += ` (${words["planner.lower"]})`;
    if (signed && i === scale.colours.length - 1) text += ` (${words["planner.higher"]})`;
    item.append(swatch, element("span", text));
    legend.append(item);
  });
  const few = element("li");
  const swatch = element("span", undefined, "legend-swatch too-few");
  swatch.setAttribute("aria-hidden", "true");
  few.append(swatch, element("span", words["planner.too_few"]));
  legend.append(few);
  if (form.elements.hotspots.checked) {
    const hot = element("li");
    const mark = element("span", undefined, "legend-swatch hotspot");
    mark.setAttribute("aria-hidden", "true");
    hot.append(mark, element("span", words["planner.hotspots"]));
    legend.append(hot);
  }
  if (form.elements.heat.checked && state.heat) {
    // The heat layer's own colour ramp, as a bar: Leaflet.heat scales to the busiest spot in view.
    const warm = element("li", undefined, "legend-heat");
    const ramp = element("span", undefined, "legend-swatch heat-ramp");
    ramp.setAttribute("aria-hidden", "true");
    const stops = Object.entries(HEAT_GRADIENT).map(([at, colour]) => `${colour} ${Math.round(at * 100)}%`);
    ramp.style.background = `linear-gradient(to right, ${HEAT_GRADIENT[Object.keys(HEAT_GRADIENT)[0]]} 0%, ${stops.join(", ")})`;
    warm.append(ramp, element("span", fill(words["planner.heat_legend"], {
      reports: state.heat.reports.toLocaleString(lang),
      cell_m: Math.round(state.heat.cell_m).toLocaleString(lang),
    })));
    legend.append(warm);
  }
  if (form.elements.view.value === "gap" && !signed) {
    legend.append(element("li", words["planner.gap_unavailable"], "legend-note"));
  }
}

function wardStyle(scale, p) {
  const chosen = state.chosen === p.code;
  const colour = ranked(p) ? colourOf(scale, shown(p)) : null;
  return {
    color: chosen ? "#111827" : "#4b5563",
    weight: chosen ? 4 : 1,
    fillColor: colour ?? TOO_FEW,
    fillOpacity: colour ? 0.8 : 0.5,
    dashArray: ranked(p) ? null : "4 3",
  };
}

function drawMap(scale) {
  state.layer?.remove();
  state.layer = L.geoJSON(state.data, {
    style: (f) => wardStyle(scale, f.properties),
    onEachFeature: (f, layer) => {
      const label = element("span");
      label.textContent = `${f.properties.name}: ${ranked(f.properties) ? format(measure(), shown(f.properties), view() === "gap") : words["planner.too_few"]}`;
      layer.bindTooltip(label, { sticky: true });
      layer.on("click", () => choose(f.properties.code));
      layer.on("add", () => layer.getElement()?.setAttribute("data-ward", f.properties.code));
    },
  }).addTo(map);
  state.hot?.bringToFront();
}

function sortValue(p, key) {
  if (key === "name") return p.name;
  if (!ranked(p)) return null;
  if (key === "rank") return p[`rank_${measure()}`] ?? null;
  return key === "gap" ? p[`gap_${measure()}`] : p[measure()];
}

function sorted(features) {
  const { key, dir } = state.sort;
  return [...features].sort((a, b) => {
    const x = sortValue(a.properties, key);
    const y = sortValue(b.properties, key);
    if (x === null || x === undefined) return (y === null || y === undefined) ? a.properties.name.localeCompare(b.properties.name, lang) : 1;
    if (y === null || y === undefined) return -1; // too few, or no value: always last, never ranked
    return (typeof x === "string" ? x.localeCompare(y, lang) : x - y) * dir;
  });
}

function drawTable() {
  const m = measure();
  const body = table.tBodies[0];
  body.replaceChildren();
  document.getElementById("value-heading").textContent = words[`measure.${m}`];
  for (const th of table.tHead.rows[0].cells) {
    const key = th.querySelector("button").dataset.sort;
    th.setAttribute("aria-sort", key === state.sort.key ? (state.sort.dir > 0 ? "ascending" : "descending") : "none");
  }
  for (const f of sorted(state.data.features)) {
    const p = f.properties;
    const row = element("tr");
    row.dataset.ward = p.code;
    if (state.chosen === p.code) row.className = "chosen";
    const name = element("th");
    name.scope = "row";
    const button = element("button", p.name, "ward-choose");
    button.type = "button";
    button.setAttribute("aria-pressed", String(state.chosen === p.code));
    button.addEventListener("click", () => choose(p.code));
    name.append(button);
    const value = element("td", p.too_few ? words["planner.too_few"] : format(m, p[m]), "value");
    if (p[m] !== null && p[m] !== undefined) value.dataset.value = String(p[m]);
    if (p.too_few) value.classList.add("too-few");
    const gap = p[`gap_${m}`];
    const gapCell = element("td", ranked(p) && gap !== undefined && gap !== null ? format(m, gap, true) : "–", "gap");
    const rank = p[`rank_${m}`];
    const rankCell = element("td", ranked(p) ? (rank === undefined || rank === null ? "–" : String(rank)) : words["planner.not_ranked"], "rank");
    row.append(name, value, gapCell, rankCell);
    body.append(row);
  }
  const city = state.data.city;
  document.getElementById("city-value").textContent = format(m, city[m]);
  document.getElementById("ward-caption").textContent = words[`measure.${m}`];
}

function draw() {
  const scale = classes(state.data.features);
  drawLegend(scale);
  drawMap(scale);
  drawTable();
}

function updateExports() {
  const q = query();
  for (const fmt of ["csv", "geojson", "gpkg"]) {
    document.getElementById(`export-${fmt}`).href = `${api}/wards.${fmt}${q ? `?${q}` : ""}`;
  }
}

async function problem(response) {
  try {
    const body = await response.json();
    return body.detail || `HTTP ${response.status}`;
  } catch {
    return `HTTP ${response.status}`;
  }
}

let pending = null;

async function load() {
  pending?.abort();
  const controller = new AbortController();
  pending = controller;
  root.dataset.state = "loading";
  status.textContent = words["planner.loading"];
  updateExports();
  try {
    const response = await fetch(`${api}/wards.geojson?${query()}`, { signal: controller.signal });
    if (!response.ok) throw new Error(await problem(response));
    state.data = await response.json();
  } catch (error) {
    if (error.name === "AbortError") return;
    status.textContent = fill(words["planner.failed"], { detail: error.message });
    root.dataset.state = "failed";
    return;
  }
  const reports = state.data.features.reduce((n, f) => n + (f.properties.reports || 0), 0);
  status.textContent = fill(words["planner.shown"], {
    wards: state.data.features.length,
    reports: new Intl.NumberFormat(lang).format(reports),
    from: state.data.period.from,
    to: state.data.period.to,
  });
  if (!state.data.features.some((f) => f.properties.code === state.chosen)) state.chosen = null;
  draw();
  if (state.chosen) loadTrend();
  else trendBox.hidden = true;
  if (form.elements.hotspots.checked) loadHotspots();
  if (form.elements.heat.checked) loadHeat();
  root.dataset.state = "ready";
  root.dataset.ready = "yes";
}

function choose(code) {
  state.chosen = code;
  draw();
  loadTrend();
}

async function loadTrend() {
  const code = state.chosen;
  const ward = state.data.features.find((f) => f.properties.code === code)?.properties;
  if (!ward) return;
  const m = measure();
  trendBox.hidden = false;
  trendBox.dataset.state = "loading";
  document.getElementById("trend-title").textContent = fill(words["planner.trend_title"], { ward: ward.name, measure: words[`measure.${m}`] });
  const chart = document.getElementById("trend-chart");
  const note = document.getElementById("trend-status");
  chart.replaceChildren();
  note.textContent = words["planner.loading"];
  let data;
  try {
    const response = await fetch(`${api}/trends?${query({ ward: code })}`);
    if (!response.ok) throw new Error(await problem(response));
    data = await response.json();
  } catch (error) {
    note.textContent = fill(words["planner.failed"], { detail: error.message });
    trendBox.dataset.state = "failed";
    return;
  }
  if (state.chosen !== code || measure() !== m) return; // chosen again meanwhile
  const points = data.weeks.filter((w) => w[m] !== null && w[m] !== undefined && (COUNTS.has(m) || !w.too_few));
  if (points.length) {
    chart.append(trendChart(points, m, fill(words["planner.trend_label"], { ward: ward.name, measure: words[`measure.${m}`] })));
  }
  note.textContent = points.length ? "" : words["planner.trend_none"];
  trendBox.dataset.points = String(points.length);
  trendBox.dataset.ward = code;
  trendBox.dataset.state = "ready";
}

function svg(tag, attributes, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A small line chart of the weekly values: the y range's ends and the first and last week. */
function trendChart(points, m, label) {
  const width = 320, height = 150, left = 56, right = 10, top = 10, bottom = 28;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "trend-chart" });
  chart.append(svg("title", {}, label));
  if (!points.length) return chart;
  const values = points.map((w) => w[m]);
  const low = Math.min(0, ...values);
  const high = Math.max(...values) || 1;
  const times = points.map((w) => Date.parse(w.week));
  const first = times[0], last = times[times.length - 1];
  const x = (t) => left + (last === first ? (width - left - right) / 2 : ((t - first) / (last - first)) * (width - left - right));
  const y = (v) => top + (1 - (v - low) / (high - low)) * (height - top - bottom);
  chart.append(
    svg("line", { x1: left, y1: top, x2: left, y2: height - bottom, class: "axis" }),
    svg("line", { x1: left, y1: height - bottom, x2: width - right, y2: height - bottom, class: "axis" }),
    svg("text", { x: left - 4, y: top + 4, "text-anchor": "end", class: "tick" }, format(m, high)),
    svg("text", { x: left - 4, y: height - bottom, "text-anchor": "end", class: "tick" }, format(m, low)),
    svg("text", { x: left, y: height - 8, "text-anchor": "start", class: "tick" }, points[0].week),
  );
  if (points.length > 1) {
    chart.append(svg("text", { x: width - right, y: height - 8, "text-anchor": "end", class: "tick" }, points[points.length - 1].week));
  }
  chart.append(svg("polyline", {
    points: points.map((w, i) => `${x(times[i]).toFixed(1)},${y(w[m]).toFixed(1)}`).join(" "),
    class: "trend-line",
  }));
  points.forEach((w, i) => {
    const dot = svg("circle", { cx: x(times[i]).toFixed(1), cy: y(w[m]).toFixed(1), r: 3, class: "trend-dot" });
    dot.append(svg("title", {}, `${words["planner.week"]} ${w.week}: ${format(m, w[m])}`));
    chart.append(dot);
  });
  return chart;
}

async function loadHotspots() {
  state.hot?.remove();
  state.hot = null;
  if (!form.elements.hotspots.checked) return;
  try {
    const response = await fetch(`${api}/hotspots?${query()}`);
    if (!response.ok) throw new Error(await problem(response));
    const data = await response.json();
    if (!form.elements.hotspots.checked) return;
    const hot = { ...data.cells, features: data.cells.features.filter((f) => f.properties.verdict === "hot") };
    state.hot = L.layerGroup([
      L.geoJSON(hot, { style: HOT_STYLE, interactive: false }),
      L.geoJSON(data.clusters, { style: { color: "#111827", weight: 2, dashArray: "5 4", fill: false }, interactive: false }),
    ]).addTo(map);
    root.dataset.hotspots = String(hot.features.length + data.clusters.features.length);
  } catch (error) {
    status.textContent = fill(words["planner.failed"], { detail: error.message });
  }
}

let heatPending = null;

async function loadHeat() {
  heatPending?.abort();
  if (!form.elements.heat.checked) {
    heat.remove();
    delete root.dataset.heatCells;
    state.heat = null;
    if (state.data) drawLegend(classes(state.data.features));
    return;
  }
  const controller = new AbortController();
  heatPending = controller;
  try {
    const response = await fetch(`${api}/heat?${query()}`, { signal: controller.signal });
    if (!response.ok) throw new Error(await problem(response));
    const data = await response.json();
    if (!form.elements.heat.checked) return;
    heat.setLatLngs(data.points); // [lat, lon, reports]: the weights count
    heat.addTo(map);
    root.dataset.heatCells = String(data.points.length);
    state.heat = { reports: data.reports, cell_m: data.cell_m };
    if (state.data) drawLegend(classes(state.data.features));
  } catch (error) {
    if (error.name === "AbortError") return;
    status.textContent = fill(words["planner.failed"], { detail: error.message });
  }
}

for (const button of table.tHead.querySelectorAll("button[data-sort]")) {
  button.addEventListener("click", () => {
    const key = button.dataset.sort;
    state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : key === "name" || key === "rank" ? 1 : -1 };
    drawTable();
  });
}
form.addEventListener("submit", (event) => event.preventDefault());
form.addEventListener("change", (event) => {
  const name = event.target.name;
  if (name === "measure" || name === "view") {
    if (!state.data) return; // drawn when the table arrives
    draw();
    if (state.chosen && name === "measure") loadTrend();
  } else if (name === "hotspots") {
    if (state.data) drawLegend(classes(state.data.features));
    loadHotspots();
  } else if (name === "heat") {
    loadHeat();
  } else if (form.checkValidity()) {
    load();
  }
});

load();
