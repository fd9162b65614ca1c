"""`python -m sadm.cli` (e.g. under torchrun)."""

import sys

from sadm.cli.main import main

sys.exit(main())
