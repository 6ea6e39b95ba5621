"""The API documentation page (Swagger UI from local files; its start-up script is a file,
since the Content-Security-Policy allows no inline script). The resident's report page is
maps.report_page, routed in maps.router.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

router = APIRouter()

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


def _script(source: str) -> Response:
    return Response(
        source,
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=300"},
    )


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
