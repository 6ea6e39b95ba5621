"""The kernel: settings, database, embedded PostGIS, migrations runner, errors, HTTP helpers and
dependencies, staff auth, media (storage, photo processing, the photos table) and notices (the
outbox, channels, templates, signed links, the worker). It imports no domain package."""
