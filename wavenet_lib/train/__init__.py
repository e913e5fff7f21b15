"""Training: the loop, checkpoints, distributed (DDP) helpers."""
