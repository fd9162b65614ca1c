"""Algorithm 1: index partitions (`partitions`), batches (`batches`), the Trainer with its EMA,
checkpoints and DDP (`trainer`, `ema`), and the experiment files that build one (`experiment`)."""
