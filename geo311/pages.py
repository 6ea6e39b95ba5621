"""The resident's report page: a plain form that works on any phone, with no external files.

Every text that comes from the database is escaped; answers from the API are put on the page
with textContent, never as HTML. Scripts are files of their own (the Content-Security-Policy
allows no inline script), served from here so the page needs nothing from elsewhere.
"""

from __future__ import annotations

from html import escape

from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

from geo311.kernel.deps import SessionDep
from layers.deps import JurisdictionDep
from work_orders import service as work_orders_service

router = APIRouter()

_REPORT_JS = """\
const form = document.getElementById("report");
const result = document.getElementById("result");
function show(cls, lines) {
  result.className = cls;
  result.replaceChildren(...lines.map(t => { const p = document.createElement("p");
    p.textContent = t; return p; }));
  result.scrollIntoView({ behavior: "smooth", block: "center" });
}
document.getElementById("locate").addEventListener("click", () => {
  if (!navigator.geolocation) return show("err", ["This browser cannot share its location."]);
  navigator.geolocation.getCurrentPosition(
    p => { form.lat.value = p.coords.latitude.toFixed(6);
           form.lon.value = p.coords.longitude.toFixed(6); },
    e => show("err", ["Location not available: " + e.message]));
});
form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const data = new FormData(form);
  for (const k of ["lat", "lon", "email", "description"]) if (!data.get(k)) data.delete(k);
  const photo = data.get("photo"); if (photo && !photo.size) data.delete("photo");
  const resp = await fetch("/api/v1/reports", { method: "POST", body: data });
  const body = await resp.json();
  if (resp.ok) {
    show("ok", ["Thank you. Your tracking number is " + body.tracking_id + ".",
      "Ward: " + (body.ward ? body.ward.name : "unknown") +
      (body.location_source === "exif" ? " (placed from the photo's GPS)" : ""),
      "Status: " + body.status]);
    form.reset();
  } else {
    const lines = [body.title || "The report was not accepted.", body.detail || ""];
    for (const e of body.errors || []) lines.push(e.field + ": " + e.message);
    show("err", lines.filter(Boolean));
  }
});
"""

# Swagger UI's start-up, which FastAPI would inline into the page.
_DOCS_JS = """\
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
});
"""

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Report a problem — {city}</title>
<style>
 body {{ font: 16px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 36rem; padding: 1rem; }}
 label {{ display: block; margin-top: .8rem; font-weight: 600; }}
 input, select, textarea, button {{ font: inherit; width: 100%; box-sizing: border-box;
   padding: .5rem; margin-top: .2rem; }}
 .row {{ display: flex; gap: .5rem; }} .row > * {{ flex: 1; }}
 button {{ margin-top: 1rem; background: #0b5; color: #fff; border: 0; border-radius: .3rem; }}
 #result {{ margin-top: 1rem; padding: .8rem; border-radius: .3rem; display: none; }}
 #result.ok {{ background: #e6f7ea; display: block; }}
 #result.err {{ background: #fdeaea; display: block; }}
 small {{ color: #555; }}
</style></head>
<body>
<h1>Report a problem in {city}</h1>
<form id="report" enctype="multipart/form-data">
 <label for="category">What is wrong?</label>
 <select id="category" name="category" required>{options}</select>
 <label for="photo">Photo</label>
 <input id="photo" name="photo" type="file" accept="image/*" capture="environment">
 <small>With location on in the camera, the photo places the report by itself.</small>
 <label>Where? <small>(optional with a GPS photo)</small></label>
 <div class="row">
  <input id="lat" name="lat" inputmode="decimal" placeholder="latitude">
  <input id="lon" name="lon" inputmode="decimal" placeholder="longitude">
 </div>
 <button type="button" id="locate">Use my location</button>
 <label for="description">Details</label>
 <textarea id="description" name="description" maxlength="4000" rows="3"></textarea>
 <label for="email">E-mail for updates <small>(private)</small></label>
 <input id="email" name="email" type="email" autocomplete="email">
 <label for="language">Language</label>
 <select id="language" name="language"><option value="en">English</option>
  <option value="es">Español</option></select>
 <button type="submit" id="send">Send report</button>
</form>
<div id="result" role="status" aria-live="polite"></div>
<script src="/static/report.js" defer></script>
</body></html>
"""


@router.get("/report", response_class=HTMLResponse, include_in_schema=False)
def report_page(session: SessionDep, jurisdiction: JurisdictionDep) -> HTMLResponse:
    categories = work_orders_service.list_categories(session, jurisdiction_id=jurisdiction.id)
    options = "".join(
        f'<option value="{escape(c.code)}">{escape(c.name)}</option>' for c in categories
    )
    return HTMLResponse(_PAGE.format(city=escape(jurisdiction.name), options=options))


def _script(source: str) -> Response:
    return Response(
        source,
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=300"},
    )


@router.get("/static/report.js", include_in_schema=False)
def report_script() -> Response:
    return _script(_REPORT_JS)


@router.get("/docs", include_in_schema=False)
def docs() -> HTMLResponse:
    page = get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="geo311 API",
        swagger_js_url="/static/docs/swagger-ui-bundle.js",
        swagger_css_url="/static/docs/swagger-ui.css",
        swagger_favicon_url="/static/docs/favicon.png",
    )
    html = bytes(page.body).decode()
    # FastAPI inlines the start-up script; the policy allows none, so it comes from a file.
    head, _, rest = html.partition("<script>")
    _, _, tail = rest.partition("</script>")
    return HTMLResponse(head + '<script src="/static/docs-init.js"></script>' + tail)


@router.get("/static/docs-init.js", include_in_schema=False)
def docs_script() -> Response:
    return _script(_DOCS_JS)
