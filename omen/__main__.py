"""`python -m omen` is the `omen` command."""

import sys

from omen.cli import main

sys.exit(main())
