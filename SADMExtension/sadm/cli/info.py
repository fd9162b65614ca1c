"""`sadm info`: bundled models, device and versions."""

from __future__ import annotations

import argparse


def add_parser(commands) -> None:
    p = commands.add_parser("info", help="bundled models, device, versions")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from sadm import __version__
    from sadm.devices import describe_device, resolve_device
    from sadm.storage.registry import available_models

    print(f"sadm {__version__}, torch {torch.__version__}")
    print(f"device: {describe_device(resolve_device('auto'))}")
    models = available_models()
    print("bundled models: " + (", ".join(f"{name} ({path})" for name, path in models.items()) or "none"))
    return 0
