"""The public map page: folium makes the Leaflet map (tiles when configured, a marker cluster,
the city's extent); the page module public-map.js fills it from the JSON API and draws the
basemap. No user text goes through folium."""

from __future__ import annotations

import json
from html import escape
from urllib.parse import urlsplit

import folium
from folium.plugins import MarkerCluster

from maps import folium_assets, i18n, shell
from maps.assets import own_url
from maps.folium_assets import RenderedMap
from work_orders.models import ServiceCategory

# The words public-map.js puts on the page (the rest of the page is rendered here).
_SCRIPT_WORDS = (
    "map.shown",
    "map.failed",
    "map.tiles_failed",
    "state.open",
    "state.fixed",
    "popup.reported",
    "popup.reports",
    "popup.tracking",
    "popup.no_description",
    "zoom.in",
    "zoom.out",
)


def tile_origin(tile_url: str) -> str | None:
    """Return scheme://host[:port] of a tile URL template, or None when it has none."""
    parts = urlsplit(tile_url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def build_map(
    *,
    extent: tuple[float, float, float, float] | None,
    tile_url: str,
    tile_attribution: str,
    tile_max_zoom: int,
) -> tuple[folium.Map, MarkerCluster, folium.TileLayer | None]:
    """Return a folium map fitted to ``extent`` with its marker cluster (and tile layer)."""
    west, south, east, north = extent or (-0.1, -0.1, 0.1, 0.1)
    fmap = folium.Map(
        location=[(south + north) / 2, (west + east) / 2],
        zoom_start=13,
        tiles=None,
        control_scale=True,
        # folium hands its max_zoom only to the tile layer it makes itself (none here); the
        # marker cluster needs the map's own maxZoom, so it goes in as a Leaflet option.
        maxZoom=tile_max_zoom,
        zoomSnap=0.25,  # fit the city closely on any screen
    )
    tiles = None
    if tile_url:
        # Leaflet shows the attribution as HTML: the configured text is shown as text.
        attribution = escape(tile_attribution or urlsplit(tile_url).netloc or "tiles")
        tiles = folium.TileLayer(
            tiles=tile_url, attr=attribution, max_zoom=tile_max_zoom, name="tiles"
        )
        tiles.add_to(fmap)
    cluster = MarkerCluster(name="reports", options={"showCoverageOnHover": False})
    cluster.add_to(fmap)
    fmap.fit_bounds([[south, west], [north, east]])
    return fmap, cluster, tiles


def render_page(
    context: shell.PageContext,
    *,
    categories: list[ServiceCategory],
    extent: tuple[float, float, float, float] | None,
    tile_url: str,
    tile_attribution: str,
    tile_max_zoom: int,
    fixed_days: int,
    nonce: str,
) -> str:
    """Return the /map page's HTML."""
    fmap, cluster, tiles = build_map(
        extent=extent,
        tile_url=tile_url,
        tile_attribution=tile_attribution,
        tile_max_zoom=tile_max_zoom,
    )
    rendered: RenderedMap = folium_assets.render(fmap.get_root(), drop_header_of=fmap, nonce=nonce)
    words = i18n.messages(context.language)
    colours = {c.code: i % 8 for i, c in enumerate(categories)}
    categories_json = json.dumps(
        {c.code: {"name": c.name, "colour": colours[c.code]} for c in categories}
    )
    module = f'<script type="module" src="{own_url("public-map.js")}"></script>'
    return shell.render(
        "map.html",
        context,
        title=words["page.map"],
        head=shell.Markup(rendered.head),
        scripts=shell.Markup(rendered.script + "\n" + module),
        map_html=shell.Markup(rendered.body),
        map_name=fmap.get_name(),
        cluster_name=cluster.get_name(),
        tiles_name=tiles.get_name() if tiles is not None else "",
        categories=categories,
        categories_json=categories_json,
        words_json=json.dumps({k: words[k] for k in _SCRIPT_WORDS}),
        statuses_json=json.dumps(
            {k.removeprefix("status."): v for k, v in words.items() if k.startswith("status.")}
        ),
        fixed_days=fixed_days,
    )
