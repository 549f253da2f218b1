"""Fine-tuning: losses and metrics that respect masks, a jitted train/eval step, and ``fit``."""
