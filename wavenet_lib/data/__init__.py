"""Data in: audio and EDA files, manifests, the synthetic dataset, normalization, training windows."""
