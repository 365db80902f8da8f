"""Measures: synthesis quality (shape preservation, surround change) and segmentation scores."""
