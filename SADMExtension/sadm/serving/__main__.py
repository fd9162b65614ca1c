"""`python -m sadm.serving`: the warm generation worker (sadm.serving.worker)."""

from __future__ import annotations

import sys

from sadm.serving.worker import main

if __name__ == "__main__":
    sys.exit(main())
