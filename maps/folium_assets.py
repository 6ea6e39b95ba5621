"""The one place folium's CDN links become files geo311 serves itself.

folium names each JavaScript/CSS link an element needs in its class's ``default_js`` /
``default_css`` (name, URL) lists. ``localize`` gives every element of a map, before it is
rendered, its own copies of those lists with local URLs, and drops what the pages do not use.
A link it has no entry for raises UnknownAsset, so a new plugin or a folium upgrade that adds a
link fails in the tests instead of quietly reaching for a CDN.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from branca.element import Element, Figure
from folium.elements import JSCSSMixin

from maps.assets import folium_url, vendor_url

# folium's link name -> our URL, or None for a file the pages do not use (not loaded at all).
LOCAL_ASSETS: Mapping[str, str | None] = {
    # folium.Map
    "leaflet": vendor_url("leaflet", "dist/leaflet.js"),
    "leaflet_css": vendor_url("leaflet", "dist/leaflet.css"),
    # jQuery, Bootstrap, Font Awesome, glyphicons and Leaflet.awesome-markers serve folium's
    # Icon (awesome markers) and its Bootstrap-styled popups; our markers, popups and panels
    # are our own (textContent, CSS), so none of these is loaded.
    "jquery": None,
    "bootstrap": None,
    "bootstrap_css": None,
    "glyphicons_css": None,
    "awesome_markers": None,
    "awesome_markers_css": None,
    "awesome_markers_font_css": None,
    "awesome_rotate_css": None,
    # folium.plugins.MarkerCluster
    "markerclusterjs": vendor_url("leaflet.markercluster", "dist/leaflet.markercluster.js"),
    "markerclustercss": vendor_url("leaflet.markercluster", "dist/MarkerCluster.css"),
    "markerclusterdefaultcss": vendor_url(
        "leaflet.markercluster", "dist/MarkerCluster.Default.css"
    ),
    # folium.plugins.GeoMan (drawing, box selection)
    "leaflet_geoman_js": vendor_url("@geoman-io/leaflet-geoman-free", "dist/leaflet-geoman.js"),
    "leaflet_geoman_css": vendor_url("@geoman-io/leaflet-geoman-free", "dist/leaflet-geoman.css"),
    # folium.plugins.HeatMap
    "leaflet-heat.js": folium_url("templates/leaflet_heat.min.js"),
}


class UnknownAsset(LookupError):
    """A folium element links a file that has no local copy (add it to LOCAL_ASSETS)."""


def _elements(root: Element) -> Iterator[Element]:
    stack = [root]
    while stack:
        element = stack.pop()
        yield element
        stack.extend(element._children.values())


def _local(links: list[tuple[str, str]], owner: str) -> list[tuple[str, str]]:
    out = []
    for name, url in links:
        if name not in LOCAL_ASSETS:
            raise UnknownAsset(f"{owner} links {name!r} ({url}): no local copy in LOCAL_ASSETS")
        local = LOCAL_ASSETS[name]
        if local is not None:
            out.append((name, local))
    return out


def localize(root: Element) -> None:
    """Point every folium element under ``root`` at geo311's own copies of its files.

    Sets instance attributes: folium's own ``add_js_link`` would change the class-wide lists,
    i.e. every map in the process."""
    for element in _elements(root):
        if isinstance(element, JSCSSMixin):
            owner = type(element).__name__
            element.default_js = _local(list(type(element).default_js), owner)
            element.default_css = _local(list(type(element).default_css), owner)


_SCRIPT_TAG = re.compile(r"<script(?=[\s>])", re.IGNORECASE)


@dataclass(frozen=True)
class RenderedMap:
    """A folium map cut into what a page needs: <head> links, the map's element, its script."""

    head: str
    body: str
    script: str


def render(root: Element, *, drop_header_of: Element, nonce: str) -> RenderedMap:
    """Render a localized folium figure into its parts; every <script> folium wrote gets
    ``nonce``, and the map's inline code comes back as one <script nonce=…> block.

    ``drop_header_of``: the folium.Map, whose header block is left out: it sets a viewport of
    its own with ``user-scalable=no`` (people could not zoom the page) and page-wide CSS for
    <html>/<body>; the page shell sets both itself. Safe to bless with the nonce only because
    the pages give folium no user text: markers, popups and labels come in as JSON and are put
    on the page with textContent.
    """
    if not isinstance(root, Figure):
        raise TypeError("render takes the map's figure: fmap.get_root()")
    localize(root)
    for child in root._children.values():
        child.render()
    root.header._children.pop(drop_header_of.get_name(), None)
    root.header._children.pop("meta_http", None)  # the shell has its own charset
    head = _SCRIPT_TAG.sub(f'<script nonce="{nonce}"', root.header.render())
    body = root.html.render()
    script = f'<script nonce="{nonce}">\n{root.script.render()}\n</script>'
    return RenderedMap(head=head, body=body, script=script)
