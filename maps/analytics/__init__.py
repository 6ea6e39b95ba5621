"""The planner's analytics: ward tables, trends, hotspots and exports, counted in PostGIS."""
