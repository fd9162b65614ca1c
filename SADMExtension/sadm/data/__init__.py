"""Image I/O, preprocessing and datasets for longitudinal 3D sequences."""
