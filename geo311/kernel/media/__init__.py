"""Media: the storage (``store``), the photo pipeline (``photos``, ``uploads``) and the photos
table (``models``), used by intake for reports and by work orders for after-photos."""
