"""The files the map pages load, all served by geo311 itself: third-party JavaScript and CSS
from their pinned packages (npm, under maps/node_modules; one file from the folium wheel), and
our own page modules from maps/static. Only files on the allow-lists below are served: a URL
is looked up, never joined onto a directory, so there is no listing and no path to climb out.
"""

from __future__ import annotations

import json
import logging
import mimetypes
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib.metadata import version
from pathlib import Path

import folium

log = logging.getLogger(__name__)

MAPS_DIR = Path(__file__).resolve().parent
NODE_MODULES = MAPS_DIR / "node_modules"
STATIC_DIR = MAPS_DIR / "static"
LOCKFILE = MAPS_DIR / "package-lock.json"
FOLIUM_DIR = Path(folium.__file__).resolve().parent

VENDOR_PREFIX = "/assets/vendor"
OWN_PREFIX = "/assets/maps"

# npm package -> the files of it that pages load (CSS's images included).
NPM_FILES: Mapping[str, tuple[str, ...]] = {
    "leaflet": (
        "dist/leaflet.js",
        "dist/leaflet.css",
        "dist/images/layers.png",
        "dist/images/layers-2x.png",
        "dist/images/marker-icon.png",
        "dist/images/marker-icon-2x.png",
        "dist/images/marker-shadow.png",
    ),
    "leaflet.markercluster": (
        "dist/leaflet.markercluster.js",
        "dist/MarkerCluster.css",
        "dist/MarkerCluster.Default.css",
    ),
    "@geoman-io/leaflet-geoman-free": ("dist/leaflet-geoman.js", "dist/leaflet-geoman.css"),
    # The report page reads a chosen photo's GPS position in the browser (ES module build).
    "exifr": ("dist/lite.esm.mjs",),
    # The accessibility audit the browser tests run on every page.
    "axe-core": ("axe.min.js",),
}
# Files folium ships in its own wheel (pinned by uv.lock): its heat-map plugin is written
# against this patched Leaflet.heat (point weights honoured), which no npm release carries.
FOLIUM_FILES: tuple[str, ...] = ("templates/leaflet_heat.min.js",)

OWN_SUFFIXES = frozenset({".js", ".css", ".svg"})
VENDOR_CACHE = "public, max-age=31536000, immutable"  # the version is in the URL
OWN_CACHE = "no-cache"  # revalidated (ETag): a changed module is seen at once


@dataclass(frozen=True)
class Asset:
    """A file the app serves, with its content type and caching."""

    path: Path
    media_type: str
    cache_control: str


def _media_type(path: Path) -> str:
    if path.suffix in (".js", ".mjs"):
        return "text/javascript; charset=utf-8"
    if path.suffix == ".css":
        return "text/css; charset=utf-8"
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


@cache
def npm_versions() -> dict[str, str]:
    """Return {package: version} as package-lock.json pins them (read once)."""
    lock = json.loads(LOCKFILE.read_text(encoding="utf-8"))
    return {
        key.removeprefix("node_modules/"): str(entry["version"])
        for key, entry in lock["packages"].items()
        if key.startswith("node_modules/") and "version" in entry
    }


def vendor_url(package: str, file: str) -> str:
    """Return the URL of one allow-listed file of an npm package (its version in the path)."""
    if file not in NPM_FILES.get(package, ()):
        raise KeyError(f"{package}/{file} is not on the allow-list (maps.assets.NPM_FILES)")
    return f"{VENDOR_PREFIX}/{package}@{npm_versions()[package]}/{file}"


def folium_url(file: str) -> str:
    """Return the URL of one allow-listed file of the folium package."""
    if file not in FOLIUM_FILES:
        raise KeyError(f"folium/{file} is not on the allow-list (maps.assets.FOLIUM_FILES)")
    return f"{VENDOR_PREFIX}/folium@{version('folium')}/{file}"


def own_url(name: str) -> str:
    """Return the URL of one of our own files in maps/static."""
    if name not in own_assets():
        raise KeyError(f"maps/static/{name} does not exist")
    return f"{OWN_PREFIX}/{name}"


@cache
def vendor_assets() -> dict[str, Asset]:
    """Return {URL path below /assets/vendor/: file} for every allow-listed vendor file."""
    table: dict[str, Asset] = {}
    missing = 0
    for package, files in NPM_FILES.items():
        for file in files:
            path = NODE_MODULES / package / file
            missing += not path.is_file()
            url = vendor_url(package, file).removeprefix(VENDOR_PREFIX + "/")
            table[url] = Asset(path, _media_type(path), VENDOR_CACHE)
    for file in FOLIUM_FILES:
        path = FOLIUM_DIR / file
        url = folium_url(file).removeprefix(VENDOR_PREFIX + "/")
        table[url] = Asset(path, _media_type(path), VENDOR_CACHE)
    if missing:
        log.warning(
            "%d map asset files are missing from %s: run `make setup` (npm ci --prefix maps)",
            missing,
            NODE_MODULES,
        )
    return table


@cache
def own_assets() -> dict[str, Asset]:
    """Return {file name: file} for our own page modules and styles in maps/static."""
    return {
        path.name: Asset(path, _media_type(path), OWN_CACHE)
        for path in sorted(STATIC_DIR.iterdir())
        if path.is_file() and path.suffix in OWN_SUFFIXES
    }
