"""Model folders on disk: atomic writes (`atomic`), safetensors checkpoints (`checkpoint`) and finding
bundled models by name (`registry`)."""
