"""``python -m fastbin ...``: the command line (see :mod:`fastbin.cli`)."""
import sys

from .tools.cli import main

sys.exit(main())
