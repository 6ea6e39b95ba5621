"""The planner's page (/planner): a ward choropleth of one measure, its legend, a sortable ward
table, a ward's weekly trend, the export links, and the hotspot and heat layers on demand.

folium makes the empty Leaflet map (tiles when configured, fitted to the city) and the empty
heat layer (off the map until switched on; its Leaflet.heat script comes with it); the page module
planner.js fills everything from the analytics API (maps.analytics) with the signed-in
session's cookie. No data goes through folium, and the module puts text on the page with
textContent only, so a ward's name is always shown as text.
"""

from __future__ import annotations

import json
from datetime import date
from html import escape
from urllib.parse import urlsplit

import folium
from folium.plugins import HeatMap

from maps import folium_assets, i18n, shell
from maps.assets import own_url
from work_orders.models import ServiceCategory

# Who may open the page: the analytics API's readers (admins are always let in).
ROLES = ("planner", "dispatcher", "admin")

# The measures the switch offers, in its order: (field of the API's ward table, message key).
MEASURES: tuple[str, ...] = (
    "reports",
    "rate_per_1000",
    "median_close_h",
    "p90_close_h",
    "sla_breach_share",
    "backlog",
    "on_time_score",
    "reopen_share",
)

# The heat layer's colours by share of the busiest spot in view (Leaflet.heat's own defaults,
# written out so that the legend planner.js draws is the layer's own scale).
HEAT_GRADIENT: dict[float, str] = {
    0.4: "#0000ff",
    0.6: "#00ffff",
    0.7: "#00ff00",
    0.8: "#ffff00",
    1.0: "#ff0000",
}

# The words planner.js puts on the page.
_SCRIPT_WORDS = (
    "planner.loading",
    "planner.failed",
    "planner.shown",
    "planner.too_few",
    "planner.not_ranked",
    "planner.no_value",
    "planner.city",
    "planner.trend_title",
    "planner.trend_none",
    "planner.trend_label",
    "planner.gap_unavailable",
    "planner.lower",
    "planner.higher",
    "planner.sorted_asc",
    "planner.sorted_desc",
    "planner.week",
    "planner.hotspots",
    "planner.heat",
    "planner.heat_legend",
    "zoom.in",
    "zoom.out",
    "map.tiles_failed",
    *(f"measure.{m}" for m in MEASURES),
    *(f"unit.{m}" for m in MEASURES),
)


def may_open(role: str) -> bool:
    """Return whether a signed-in user with ``role`` may open the planner's page."""
    return role in ROLES


def build_map(
    *,
    extent: tuple[float, float, float, float] | None,
    tile_url: str,
    tile_attribution: str,
    tile_max_zoom: int,
) -> tuple[folium.Map, HeatMap, folium.TileLayer | None]:
    """Return an empty folium map fitted to ``extent``, its heat layer, and its tile layer."""
    west, south, east, north = extent or (-0.1, -0.1, 0.1, 0.1)
    fmap = folium.Map(
        location=[(south + north) / 2, (west + east) / 2],
        zoom_start=12,
        tiles=None,
        control_scale=True,
        maxZoom=tile_max_zoom,
        zoomSnap=0.25,
    )
    tiles = None
    if tile_url:
        tiles = folium.TileLayer(
            tiles=tile_url,
            # Leaflet shows the attribution as HTML: the configured text is shown as text.
            attr=escape(tile_attribution or urlsplit(tile_url).netloc or "tiles"),
            max_zoom=tile_max_zoom,
            name="tiles",
        )
        tiles.add_to(fmap)
    # Empty and off the map: planner.js gives it the API's weighted cells when switched on.
    heat = HeatMap(
        [],
        name="heat",
        show=False,
        radius=18,
        blur=15,
        min_opacity=0.3,
        gradient=HEAT_GRADIENT,
    )
    heat.add_to(fmap)
    fmap.fit_bounds([[south, west], [north, east]])
    return fmap, heat, tiles


def render_page(
    context: shell.PageContext,
    *,
    categories: list[ServiceCategory],
    extent: tuple[float, float, float, float] | None,
    first_day: date,
    last_day: date,
    tile_url: str,
    tile_attribution: str,
    tile_max_zoom: int,
    nonce: str,
) -> str:
    """Return the /planner page's HTML."""
    fmap, heat, tiles = build_map(
        extent=extent,
        tile_url=tile_url,
        tile_attribution=tile_attribution,
        tile_max_zoom=tile_max_zoom,
    )
    rendered = folium_assets.render(fmap.get_root(), drop_header_of=fmap, nonce=nonce)
    words = i18n.messages(context.language)
    groups = sorted({c.group_code for c in categories})
    module = f'<script type="module" src="{own_url("planner.js")}"></script>'
    return shell.render(
        "planner.html",
        context,
        title=words["page.planner"],
        head=shell.Markup(rendered.head),
        scripts=shell.Markup(rendered.script + "\n" + module),
        map_html=shell.Markup(rendered.body),
        map_name=fmap.get_name(),
        tiles_name=tiles.get_name() if tiles is not None else "",
        heat_name=heat.get_name(),
        heat_gradient_json=json.dumps(HEAT_GRADIENT),
        categories=categories,
        groups=groups,
        measures=[(m, words[f"measure.{m}"]) for m in MEASURES],
        first_day=first_day.isoformat(),
        last_day=last_day.isoformat(),
        words_json=json.dumps({k: words[k] for k in _SCRIPT_WORDS}),
    )


def render_forbidden(context: shell.PageContext) -> str:
    """Return the page for a signed-in user whose role may not see the planner's page."""
    words = i18n.messages(context.language)
    return shell.render("planner_forbidden.html", context, title=words["planner.forbidden_title"])
