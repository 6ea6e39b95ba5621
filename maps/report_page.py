"""The resident's report page, map first: a pin dropped by a tap, the device's location or the
photo's own GPS (read in the browser before upload); the ward under the pin as soon as it is
down; then a post to POST /api/v1/reports, which runs the report flow. folium makes the map;
report-page.js does the rest, putting every text from the server on the page with
textContent."""

from __future__ import annotations

import json
from itertools import groupby

from maps import folium_assets, i18n, shell
from maps.assets import own_url, vendor_url
from maps.public_map import build_map
from work_orders.models import ServiceCategory

# The words report-page.js puts on the page.
_SCRIPT_WORDS = (
    "report.pin_none",
    "report.pin_tap",
    "report.pin_device",
    "report.pin_photo",
    "report.photo_no_gps",
    "report.photo_unreadable",
    "report.locating",
    "report.locate_failed",
    "report.places_photo_device",
    "report.places_pin_photo",
    "report.places_pin_device",
    "report.places_which",
    "report.places_photo_mark",
    "report.places_device_mark",
    "report.ward",
    "report.outside",
    "report.ward_unknown",
    "report.need_pin",
    "report.sending",
    "report.done",
    "report.failed",
    "report.pin_label",
    "report.track_link",
    "nearby.distance",
    "nearby.reports",
    "nearby.photo_alt",
    "nearby.no_photo",
    "nearby.follow",
    "nearby.email",
    "nearby.send",
    "nearby.joined",
    "nearby.marker",
    "follow.failed",
    "map.tiles_failed",
    "zoom.in",
    "zoom.out",
)


def render_page(
    context: shell.PageContext,
    *,
    categories: list[ServiceCategory],
    extent: tuple[float, float, float, float] | None,
    tile_url: str,
    tile_attribution: str,
    tile_max_zoom: int,
    nonce: str,
) -> str:
    """Return the /report page's HTML."""
    fmap, _, tiles = build_map(
        extent=extent,
        tile_url=tile_url,
        tile_attribution=tile_attribution,
        tile_max_zoom=tile_max_zoom,
    )
    rendered = folium_assets.render(fmap.get_root(), drop_header_of=fmap, nonce=nonce)
    words = i18n.messages(context.language)
    groups = [
        (group, list(members)) for group, members in groupby(categories, key=lambda c: c.group_code)
    ]
    module = f'<script type="module" src="{own_url("report-page.js")}"></script>'
    return shell.render(
        "report.html",
        context,
        title=words["page.report"],
        head=shell.Markup(rendered.head),
        scripts=shell.Markup(rendered.script + "\n" + module),
        map_html=shell.Markup(rendered.body),
        map_name=fmap.get_name(),
        tiles_name=tiles.get_name() if tiles is not None else "",
        groups=groups,
        exifr_url=vendor_url("exifr", "dist/lite.esm.mjs"),
        words_json=json.dumps({k: words[k] for k in _SCRIPT_WORDS}),
    )
