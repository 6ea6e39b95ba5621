"""geo311: open-source 311 field operations and work orders on PostGIS."""

__version__ = "0.1.0"
