"""CT files and their masks into a zarr store, one Ray task per case; reruns resume."""
