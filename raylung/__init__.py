"""raylung: shape-aware GAN augmentation for pathological lung segmentation, on Ray."""

__version__ = "0.1.0"
