"""The Ray Data plane: sample specs, crop reading, augmentation, the streaming dataset."""
