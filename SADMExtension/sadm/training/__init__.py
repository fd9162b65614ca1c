"""Algorithm 1: index partitions (`partitions`), batches (`batches`), the Trainer's loop and validation
(`trainer`) with its EMA (`ema`), schedule (`schedule`), checkpoints and exact resume (`checkpoints`)
and DDP (`distributed`), and the experiment files that build one (`experiment`)."""
