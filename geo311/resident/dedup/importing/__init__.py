"""The bulk importer's steps (``geo311.resident.dedup.importer`` runs them in order): stage, place,
replay, write."""
