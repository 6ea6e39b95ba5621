// The report page's live part: the pin (a tap on the map, "use my location", or the chosen
// photo's own GPS, read here before upload), the ward under the pin, the photo preview, and
// the post to /api/v1/reports. Every text from the server goes on the page via textContent.
import { drawBasemap } from "./basemap.js";
import { element } from "./dom.js";

const root = document.getElementById("report-map");
const map = window[root.dataset.map];
const tiles = root.dataset.tiles ? window[root.dataset.tiles] : null;
const words = JSON.parse(root.dataset.words);
const form = document.getElementById("report");
const pinStatus = document.getElementById("pin-status");
const wardStatus = document.getElementById("ward-status");
const photoStatus = document.getElementById("photo-status");
const preview = document.getElementById("photo-preview");
const result = document.getElementById("result");
const tilesStatus = document.getElementById("tiles-status");
const photoHint = photoStatus.textContent;

function fill(template, values) {
  return template.replace(/\{(\w+)\}/g, (_, key) => String(values[key]));
}

map.getContainer().setAttribute("aria-label", root.getAttribute("aria-label"));
for (const [selector, key] of [[".leaflet-control-zoom-in", "zoom.in"], [".leaflet-control-zoom-out", "zoom.out"]]) {
  const button = map.getContainer().querySelector(selector);
  if (button) { button.title = words[key]; button.setAttribute("aria-label", words[key]); }
}

// --- the pin and the ward under it -------------------------------------------------------

let pin = null;
let wardRequest = null;

async function showWard(lat, lon) {
  wardRequest?.abort();
  const controller = new AbortController();
  wardRequest = controller;
  wardStatus.textContent = "";
  delete root.dataset.ward;
  try {
    const response = await fetch(`${root.dataset.wardUrl}?lat=${lat.toFixed(6)}&lon=${lon.toFixed(6)}`, { signal: controller.signal });
    if (!response.ok) throw new Error(`ward: HTTP ${response.status}`);
    const body = await response.json();
    wardStatus.textContent = body.ward ? fill(words["report.ward"], { ward: body.ward.name }) : words["report.outside"];
    wardStatus.classList.toggle("outside", !body.ward);
    root.dataset.ward = body.ward ? body.ward.code : "outside";
  } catch (error) {
    if (!controller.signal.aborted) wardStatus.textContent = words["report.ward_unknown"];
  }
}

function placePin(latlng, how, { pan = false } = {}) {
  if (pin === null) {
    const icon = L.divIcon({ className: "pin report-pin", iconSize: [26, 26], html: "" });
    pin = L.marker(latlng, { icon, draggable: true, keyboard: true, title: words["report.pin_label"], alt: words["report.pin_label"] }).addTo(map);
    pin.on("dragend", () => placePin(pin.getLatLng(), "report.pin_tap"));
    pin.getElement()?.setAttribute("aria-label", words["report.pin_label"]);
  } else {
    pin.setLatLng(latlng);
  }
  const { lat, lng } = pin.getLatLng();
  form.lat.value = lat.toFixed(6);
  form.lon.value = lng.toFixed(6);
  pinStatus.textContent = words[how];
  root.dataset.pin = `${lat.toFixed(6)},${lng.toFixed(6)}`;
  root.dataset.pinFrom = how.replace("report.pin_", "");
  // A new question frames the places in question itself. Views change without animation:
  // Leaflet drops a view change asked for while a zoom is still animating, so a quick
  // "use my location" right after a photo would leave the map on the old place.
  const framed = askWhichPlace();
  if (pan && !framed) map.setView(pin.getLatLng(), Math.max(map.getZoom(), 16), { animate: false });
  showWard(lat, lng);
  showNearby();
}

// --- the photo's place, the device's place and the pin: when they disagree, ask ---------

const AGREE_METRES = 30; // about a street's width: GPS on a phone is rarely better than this
const places = { photo: null, device: null }; // L.LatLng of each once known
let answered = false; // the resident chose; asked again only when a new place comes in
const placesSaid = document.getElementById("places-said");
const placesChoices = document.getElementById("places-choices");
const choosePhoto = document.getElementById("places-photo");
const chooseDevice = document.getElementById("places-device");
const placesLayer = L.layerGroup().addTo(map); // the places in question, while asking

function metresBetween(a, b) {
  // Haversine on a sphere of the Earth's mean radius: plenty for "how far apart" in words.
  const rad = Math.PI / 180;
  const dLat = (b.lat - a.lat) * rad;
  const dLon = (b.lng - a.lng) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * 6371008.8 * Math.asin(Math.min(1, Math.sqrt(h)));
}

function distanceWords(metres) {
  if (metres >= 1000) {
    return new Intl.NumberFormat(lang, { style: "unit", unit: "kilometer", maximumFractionDigits: 1 }).format(metres / 1000);
  }
  const rounded = metres < 100 ? Math.round(metres) : Math.round(metres / 10) * 10;
  return new Intl.NumberFormat(lang, { style: "unit", unit: "meter" }).format(rounded);
}

function askWhichPlace() {
  const at = pin?.getLatLng();
  const far = (a, b) => a && b && metresBetween(a, b) > AGREE_METRES;
  const near = (a, b) => a && b && !far(a, b);
  const { photo, device } = places;
  const lines = [];
  if (far(photo, device)) lines.push(fill(words["report.places_photo_device"], { distance: distanceWords(metresBetween(photo, device)) }));
  if (far(at, photo) && !near(at, device)) lines.push(fill(words["report.places_pin_photo"], { distance: distanceWords(metresBetween(at, photo)) }));
  if (far(at, device) && !near(at, photo)) lines.push(fill(words["report.places_pin_device"], { distance: distanceWords(metresBetween(at, device)) }));
  placesLayer.clearLayers();
  if (answered || lines.length === 0) {
    placesSaid.textContent = "";
    placesChoices.hidden = true;
    root.dataset.places = answered ? "answered" : "agree";
    return false;
  }
  placesSaid.textContent = `${lines.join(" ")} ${words["report.places_which"]}`;
  choosePhoto.hidden = !far(at, photo);
  chooseDevice.hidden = !far(at, device);
  for (const [place, colour, label] of [[photo, "#b45309", "report.places_photo_mark"], [device, "#1d4ed8", "report.places_device_mark"]]) {
    if (!far(at, place)) continue;
    L.circleMarker(place, { radius: 8, color: colour, weight: 3, fillColor: "#fff", fillOpacity: 0.9, interactive: false })
      .bindTooltip(element("span", words[label]), { permanent: true, direction: "top", offset: [0, -8] })
      .addTo(placesLayer);
  }
  // Newly asked: show the pin and the places in question together.
  const framed = root.dataset.places !== "ask";
  if (framed) map.fitBounds(L.latLngBounds([at, photo, device].filter(Boolean)), { padding: [40, 40], maxZoom: 17, animate: false });
  placesChoices.hidden = false;
  root.dataset.places = "ask";
  return framed;
}

function answer(place, how) {
  answered = true;
  if (place) placePin(place, how, { pan: true });
  else askWhichPlace();
}

choosePhoto.addEventListener("click", () => answer(places.photo, "report.pin_photo"));
chooseDevice.addEventListener("click", () => answer(places.device, "report.pin_device"));
document.getElementById("places-keep").addEventListener("click", () => answer(null));

// --- open problems of the same kind near the pin (dedup's own rule), to follow instead ---

const nearbyBox = document.getElementById("nearby");
const nearbyList = document.getElementById("nearby-list");
const nearbyLayer = L.layerGroup().addTo(map);
const lang = root.dataset.lang;
const ageFormat = new Intl.RelativeTimeFormat(lang, { numeric: "auto" });
let nearbyRequest = null;

function age(iso) {
  const days = Math.round((new Date(iso) - Date.now()) / 86400000);
  if (days > -1) return ageFormat.format(Math.round((new Date(iso) - Date.now()) / 3600000), "hour");
  return ageFormat.format(days, "day");
}

// "Follow it": the resident's report is sent to join that request (its incident), and the
// e-mail given here follows it. A <div>, not a <form>: it sits inside the report's own form.
function followForm(incident) {
  const box = element("div", undefined, "nearby-follow");
  const id = `follow-${incident.tracking_id}`;
  const label = element("label", words["nearby.email"]);
  label.htmlFor = id;
  const input = element("input");
  Object.assign(input, { id, type: "email", required: true, autocomplete: "email", value: form.email.value });
  const send = element("button", words["nearby.send"]);
  send.type = "button";
  const said = element("p", undefined, "nearby-said");
  said.setAttribute("role", "status");
  box.append(label, input, send, said);
  const go = async () => {
    if (!input.checkValidity() || !input.value.trim()) {
      said.textContent = fill(words["follow.failed"], { detail: input.validationMessage || words["nearby.email"] });
      input.focus();
      return;
    }
    said.textContent = "";
    form.email.value = input.value.trim();
    await sendReport(`/api/v1/reports/${encodeURIComponent(incident.tracking_id)}/join`, incident.tracking_id);
  };
  send.addEventListener("click", go);
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") { event.preventDefault(); go(); }
  });
  return box;
}

function card(incident) {
  const item = element("li", undefined, "nearby-card");
  item.dataset.tracking = incident.tracking_id;
  if (incident.photo_url) {
    const img = element("img");
    img.src = incident.photo_url;
    img.alt = words["nearby.photo_alt"];
    item.append(img);
  } else {
    item.append(element("p", words["nearby.no_photo"], "nearby-no-photo"));
  }
  item.append(
    element("h3", incident.category_name),
    element("p", `${fill(words["nearby.distance"], { metres: Math.round(incident.distance_m) })} · ${age(incident.opened_at)}`),
    element("p", fill(words["nearby.reports"], { count: incident.report_count })),
  );
  const link = element("a", incident.tracking_id);
  link.href = `/track/${encodeURIComponent(incident.tracking_id)}`;
  const linkLine = element("p");
  linkLine.append(link);
  const follow = element("button", words["nearby.follow"], "nearby-follow-button");
  follow.type = "button";
  follow.setAttribute("aria-expanded", "false");
  follow.addEventListener("click", () => {
    follow.setAttribute("aria-expanded", "true");
    follow.hidden = true;
    const box = followForm(incident);
    item.append(box);
    box.querySelector("input").focus();
  });
  item.append(linkLine, follow);
  return item;
}

async function showNearby() {
  nearbyRequest?.abort();
  if (!form.lat.value || !form.category.value) return;
  const controller = new AbortController();
  nearbyRequest = controller;
  const query = new URLSearchParams({ category: form.category.value, lat: form.lat.value, lon: form.lon.value });
  try {
    const response = await fetch(`${root.dataset.nearbyUrl}?${query}`, { signal: controller.signal });
    if (!response.ok) throw new Error(`nearby: HTTP ${response.status}`);
    const body = await response.json();
    nearbyList.replaceChildren(...body.incidents.map(card));
    nearbyBox.hidden = body.incidents.length === 0;
    nearbyLayer.clearLayers();
    for (const incident of body.incidents) {
      L.circleMarker([incident.lat, incident.lon], { radius: 9, color: "#fff", weight: 2, fillColor: "#1d4ed8", fillOpacity: 0.9 })
        .bindTooltip(element("span", `${incident.category_name} · ${incident.tracking_id}`))
        .addTo(nearbyLayer);
    }
    root.dataset.nearby = String(body.incidents.length);
  } catch (error) {
    if (!controller.signal.aborted) { nearbyBox.hidden = true; root.dataset.nearby = "failed"; }
  }
}

form.category.addEventListener("change", showNearby);

map.on("click", (event) => placePin(event.latlng, "report.pin_tap"));

document.getElementById("locate").addEventListener("click", () => {
  if (!navigator.geolocation) { pinStatus.textContent = words["report.locate_failed"]; return; }
  pinStatus.textContent = words["report.locating"];
  navigator.geolocation.getCurrentPosition(
    (p) => {
      places.device = L.latLng(p.coords.latitude, p.coords.longitude);
      answered = false;
      placePin(places.device, "report.pin_device", { pan: true });
    },
    () => { pinStatus.textContent = words["report.locate_failed"]; },
    { enableHighAccuracy: true, timeout: 15000 },
  );
});

// --- the photo: preview, and its GPS position read here before upload --------------------

let previewUrl = null;
let exifr = null;

async function photoPosition(file) {
  exifr ??= await import(root.dataset.exifr);
  const gps = exifr.gps ?? exifr.default.gps;
  return gps(file); // {latitude, longitude}, or undefined when the photo carries none
}

form.photo.addEventListener("change", async () => {
  const file = form.photo.files[0];
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = null;
  preview.hidden = true;
  photoStatus.textContent = photoHint;
  delete root.dataset.photo;
  places.photo = null;
  askWhichPlace();
  if (!file) return;
  previewUrl = URL.createObjectURL(file);
  preview.src = previewUrl;
  preview.hidden = false;
  try {
    const position = await photoPosition(file);
    if (position && Number.isFinite(position.latitude) && Number.isFinite(position.longitude)) {
      places.photo = L.latLng(position.latitude, position.longitude);
      answered = false;
      placePin(places.photo, "report.pin_photo", { pan: true });
      photoStatus.textContent = words["report.pin_photo"];
      root.dataset.photo = "gps";
    } else {
      photoStatus.textContent = words["report.photo_no_gps"];
      root.dataset.photo = "no-gps";
    }
  } catch (error) {
    photoStatus.textContent = words["report.photo_unreadable"];
    root.dataset.photo = "unreadable";
  }
});

// --- sending ------------------------------------------------------------------------------

function show(kind, nodes) {
  result.className = `result ${kind}`;
  result.replaceChildren(...nodes);
  result.focus();
  result.scrollIntoView({ block: "nearest" });
}

function line(text) {
  const p = document.createElement("p");
  p.textContent = text;
  return p;
}

// Sends the report to ``url`` (a new report, or one joining request ``followed``).
async function sendReport(url, followed = null) {
  if (!form.lat.value) {
    show("err", [line(words["report.need_pin"])]);
    return;
  }
  const data = new FormData(form);
  for (const key of ["email", "phone", "description"]) if (!String(data.get(key) ?? "").trim()) data.delete(key);
  const photo = data.get("photo");
  if (!photo || !photo.size) data.delete("photo");
  const buttons = form.querySelectorAll("#send, .nearby-follow button");
  for (const button of buttons) button.disabled = true;
  result.className = "result";
  result.replaceChildren(line(words["report.sending"]));
  try {
    const response = await fetch(url, { method: "POST", body: data });
    const body = await response.json().catch(() => ({}));
    if (response.ok) {
      const link = document.createElement("a");
      link.href = `/track/${encodeURIComponent(body.tracking_id)}`;
      link.id = "track-link";
      link.textContent = fill(words["report.track_link"], { tracking_id: body.tracking_id });
      const number = line(fill(words["report.done"], { tracking_id: body.tracking_id }));
      number.id = "tracking-number";
      const ward = line(body.ward ? fill(words["report.ward"], { ward: body.ward.name }) : words["report.outside"]);
      ward.id = "result-ward";
      const linkLine = document.createElement("p");
      linkLine.append(link);
      const lines = [number, ward];
      if (followed) {
        const joined = line(fill(words["nearby.joined"], { followed, email: form.email.value }));
        joined.id = "result-joined";
        lines.push(joined);
        root.dataset.joined = followed;
      }
      show("ok", [...lines, linkLine]);
      root.dataset.tracking = body.tracking_id;
      form.hidden = true;
    } else {
      const lines = [body.title || words["report.failed"], body.detail || ""];
      for (const e of body.errors || []) lines.push(`${e.field}: ${e.message}`);
      show("err", lines.filter(Boolean).map(line));
    }
  } catch (error) {
    show("err", [line(words["report.failed"])]);
  } finally {
    for (const button of buttons) button.disabled = false;
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  sendReport("/api/v1/reports");
});

if (tiles) {
  const tilesFailed = () => { tilesStatus.textContent = words["map.tiles_failed"]; };
  const images = tiles.getContainer()?.querySelectorAll("img") ?? [];
  if ([...images].some((img) => img.complete && img.naturalWidth === 0)) tilesFailed();
  tiles.on("tileerror", tilesFailed);
}

drawBasemap(map, root.dataset.basemap).then(
  () => { root.dataset.ready = "yes"; },
  () => { root.dataset.ready = "partly"; },
);
