"""`python -m stack up` / `python -m stack up-cluster` (see stack.cli)."""

import sys

from stack.cli import main

sys.exit(main())
