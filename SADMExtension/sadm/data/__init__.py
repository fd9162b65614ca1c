"""Preprocessing of read sequences: resampling, intensity ranges, the model-grid tensors and their cache."""
