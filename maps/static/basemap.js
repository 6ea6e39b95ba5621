// geo311's own light basemap: ward outlines and the street network from /api/v1/basemap,
// drawn under the markers (and over any tiles), so the map reads with no tile server at all.
// Fetched again for the visible box when the map moves. Names go in with textContent.

const WARD_STYLE = { color: "#5b6b82", weight: 1.5, dashArray: "4 3", fillColor: "#f3efe6", fillOpacity: 0.55 };
const MAJOR = new Set(["motorway", "trunk", "primary", "secondary", "tertiary"]);

function streetStyle(feature) {
  const major = MAJOR.has(feature.properties.highway);
  return { color: major ? "#8d96a3" : "#b8bec7", weight: major ? 3 : 1.5, opacity: 0.9 };
}

function wardLabel(feature, layer) {
  const label = document.createElement("span");
  label.textContent = feature.properties.name;
  // In a pane of their own: over the basemap's lines, under the markers.
  layer.bindTooltip(label, { permanent: true, direction: "center", className: "ward-label", interactive: false, pane: "basemapLabels" });
}

function boxOf(map) {
  const b = map.getBounds().pad(0.25);
  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
  return [clamp(b.getWest(), -180, 179.9), clamp(b.getSouth(), -90, 89.9),
          clamp(b.getEast(), -179.9, 180), clamp(b.getNorth(), -89.9, 90)]
    .map((v) => v.toFixed(5)).join(",");
}

/** Draw the basemap on `map` from `url`; resolves once the first drawing is on the map. */
export function drawBasemap(map, url) {
  const pane = map.createPane("basemap");
  pane.style.zIndex = "250"; // over tiles (200), under vector overlays (400) and markers
  map.createPane("basemapLabels").style.zIndex = "300";
  let drawn = null;
  let pending = null;
  let first;
  const firstDrawing = new Promise((resolve, reject) => { first = { resolve, reject }; });

  async function load() {
    pending?.abort(); // a newer box replaces a fetch still under way
    const controller = new AbortController();
    pending = controller;
    try {
      const response = await fetch(`${url}?bbox=${boxOf(map)}`, { signal: controller.signal });
      if (!response.ok) throw new Error(`basemap: HTTP ${response.status}`);
      const data = await response.json();
      const layers = L.layerGroup([
        L.geoJSON(data.wards, { pane: "basemap", style: WARD_STYLE, interactive: false, onEachFeature: wardLabel }),
        L.geoJSON(data.streets, { pane: "basemap", style: streetStyle, interactive: false }),
      ]);
      drawn?.remove();
      drawn = layers.addTo(map);
      map.getContainer().dataset.basemap = `${data.wards.features.length} wards, ${data.streets.features.length} streets`;
      first.resolve();
    } catch (error) {
      if (!controller.signal.aborted) first.reject(error);
    }
  }

  let timer = null;
  map.on("moveend", () => {
    clearTimeout(timer);
    timer = setTimeout(load, 300);
  });
  load();
  return firstDrawing;
}
