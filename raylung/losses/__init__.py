"""Losses of the shape-aware CycleGAN: adversarial, cycle, identity and surrounding L1."""
