// The tracking page's live part: the city's own basemap under the report's point, the zoom
// buttons in the page's language, and a note when tiles fail. The page's facts and timeline
// are rendered (escaped) by the server; this module puts no text from data into the page.
import { drawBasemap } from "./basemap.js";

const root = document.getElementById("track-map");
const map = window[root.dataset.map];
const tiles = root.dataset.tiles ? window[root.dataset.tiles] : null;
const words = JSON.parse(root.dataset.words);

map.getContainer().setAttribute("aria-label", root.getAttribute("aria-label"));
for (const [selector, key] of [[".leaflet-control-zoom-in", "zoom.in"], [".leaflet-control-zoom-out", "zoom.out"]]) {
  const button = map.getContainer().querySelector(selector);
  if (button) { button.title = words[key]; button.setAttribute("aria-label", words[key]); }
}
window[root.dataset.point]?.bringToFront();

if (tiles) {
  const note = document.createElement("p");
  note.setAttribute("role", "status");
  const tilesFailed = () => { note.textContent = words["map.tiles_failed"]; root.before(note); };
  const images = tiles.getContainer()?.querySelectorAll("img") ?? [];
  if ([...images].some((img) => img.complete && img.naturalWidth === 0)) tilesFailed();
  tiles.on("tileerror", tilesFailed);
}

drawBasemap(map, root.dataset.basemap).then(
  () => { root.dataset.ready = "yes"; },
  () => { root.dataset.ready = "partly"; },
);

// Follow by e-mail: the API only sends a confirmation mail (double opt-in); its answer and
// any problem's detail are shown with textContent.
const follow = document.getElementById("follow-form");
const followStatus = document.getElementById("follow-status");
const followWords = JSON.parse(follow.dataset.words);
follow.addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = follow.querySelector("button");
  button.disabled = true;
  try {
    const response = await fetch(follow.dataset.action, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ email: follow.elements.email.value, language: follow.dataset.lang }),
    });
    const body = await response.json().catch(() => ({}));
    followStatus.textContent = response.ok
      ? followWords["follow.sent"]
      : followWords["follow.failed"].replace("{detail}", body.detail ?? response.status);
    follow.dataset.sent = response.ok ? "yes" : "no";
  } catch (error) {
    followStatus.textContent = followWords["follow.failed"].replace("{detail}", String(error));
  } finally {
    button.disabled = false;
  }
});
