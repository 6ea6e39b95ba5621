"""folium's CDN links become geo311's own files, for every element the pages use, and the map's
inline script carries the response's nonce."""

from __future__ import annotations

import re

import folium
import pytest
from branca.element import Element
from folium.plugins import Draw, GeoMan, HeatMap, MarkerCluster

from maps import folium_assets
from maps.assets import vendor_assets
from maps.folium_assets import UnknownAsset

TILES = "https://tiles.example.test/{z}/{x}/{y}.png"
URL = re.compile(r"""(?:https?:)?//[^\s"'<>)]+""")


def whole_map() -> tuple[folium.Map, Element]:
    """Return a map with every element and plugin the pages use."""
    fmap = folium.Map(location=[40.0, -75.0], zoom_start=13, tiles=None, maxZoom=19)
    folium.TileLayer(tiles=TILES, attr="Test tiles").add_to(fmap)
    cluster = MarkerCluster().add_to(fmap)
    folium.Marker([40.0, -75.0]).add_to(cluster)
    HeatMap([[40.0, -75.0, 2.0], [40.001, -75.001, 1.0]]).add_to(fmap)
    GeoMan().add_to(fmap)
    folium.GeoJson({"type": "FeatureCollection", "features": []}).add_to(fmap)
    folium.LayerControl().add_to(fmap)
    return fmap, fmap.get_root()


def test_no_asset_url_but_the_tiles_leaves_the_app() -> None:
    fmap, figure = whole_map()
    # What folium would have linked, to be sure the map really uses every plugin's files.
    plain = folium.Map(tiles=None)
    MarkerCluster().add_to(plain)
    HeatMap([[0.0, 0.0]]).add_to(plain)
    GeoMan().add_to(plain)
    cdn = {u for u in URL.findall(plain.get_root().render()) if "leaflet" in u.lower()}
    assert len(cdn) >= 6  # leaflet js/css, markercluster ×3, heat, geoman ×2

    rendered = folium_assets.render(figure, drop_header_of=fmap, nonce="n0nce")
    html = rendered.head + rendered.body + rendered.script
    external = set(URL.findall(html)) - {TILES.split("/{z}")[0], TILES}
    assert not external, external
    local = re.findall(r'(?:src|href)="(/assets/vendor/[^"]+)"', rendered.head)
    assert len(local) == 8
    served = vendor_assets()
    for url in local:
        asset = served[url.removeprefix("/assets/vendor/")]
        assert asset.path.is_file(), url
    # Bootstrap, jQuery, Font Awesome and awesome-markers are not loaded at all.
    assert not re.search(r"jquery|bootstrap|awesome|fontawesome", rendered.head, re.I)


def test_every_script_folium_writes_carries_the_nonce() -> None:
    fmap, figure = whole_map()
    rendered = folium_assets.render(figure, drop_header_of=fmap, nonce="n0nce")
    tags = re.findall(r"<script[^>]*>", rendered.head + rendered.script, re.I)
    assert tags
    assert all('nonce="n0nce"' in t for t in tags)
    assert rendered.script.count("<script") == 1
    assert "L.map(" in rendered.script
    assert "L.heatLayer(" in rendered.script
    # folium's own viewport (user-scalable=no) and page-wide CSS stay out of the page.
    assert "user-scalable" not in rendered.head
    assert "html, body" not in rendered.head


def test_localizing_leaves_folium_s_class_lists_alone() -> None:
    before = list(folium.Map.default_js), list(MarkerCluster.default_css)
    fmap, figure = whole_map()
    folium_assets.localize(figure)
    assert (list(folium.Map.default_js), list(MarkerCluster.default_css)) == before
    assert fmap.default_js[0][1].startswith("/assets/vendor/leaflet@")


def test_a_plugin_with_no_local_copy_is_refused_not_sent_to_a_cdn() -> None:
    fmap = folium.Map(tiles=None)
    Draw().add_to(fmap)
    with pytest.raises(UnknownAsset, match="leaflet_draw"):
        folium_assets.render(fmap.get_root(), drop_header_of=fmap, nonce="x")
