"""Image processing shared by ingest, training and inference: HU windows, thorax box, bands."""
