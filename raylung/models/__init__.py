"""Networks of the shape-aware CycleGAN: ResNet generator, PatchGAN discriminator (2-D, 3-D)."""
