"""The zarr case store: volumes, their manifest and side files, local or on object storage."""
