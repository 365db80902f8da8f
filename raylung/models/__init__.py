"""The networks, each built from its own few numbers: the CycleGAN's ResNet generator and PatchGAN
discriminator, and the U-Net segmenter (2-D and 3-D). ``raylung.networks`` reads them from a
config and exports and loads them."""
