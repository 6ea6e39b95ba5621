"""The ``geo311`` command's entry point: it loads only what the command given needs.

The whole command line (``geo311.cli``) imports the web app, its pages and every domain,
which takes seconds before any command starts. ``geo311 import …`` needs none of that, so it
starts with the importer's own commands alone; every other command gets the whole command line.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Run the command named on the command line."""
    if sys.argv[1:2] == ["import"]:
        import typer

        from geo311.resident.dedup.cli import app as import_app

        app = typer.Typer(help="geo311: 311 field operations on PostGIS.", no_args_is_help=True)
        app.add_typer(import_app, name="import")
        app()
        return
    from geo311.cli import app as whole

    whole()
