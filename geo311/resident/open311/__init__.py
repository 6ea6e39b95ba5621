"""Open311 GeoReport v2: the standard API that 311 apps, city portals and aggregators speak."""
