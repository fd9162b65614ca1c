"""Generation: the request (`request`, torch-free), Alg. 2 (`autoregressive`) and the numpy-in /
numpy-out `Engine` (`engine`). This package imports nothing itself, so `sadm.generation.request`
works before PyTorch is installed."""
