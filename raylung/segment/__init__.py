"""Apply a trained segmenter to scans: preprocessing as in training, masks on the scan's grid."""
