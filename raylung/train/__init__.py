"""Training: DeepSpeed engines, GAN and segmentation loops, checkpoints, the Ray Train runner."""
