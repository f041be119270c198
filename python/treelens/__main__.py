"""``python -m treelens``: the command line (see ``treelens.cli``)."""
import sys

from .cli import main

sys.exit(main())
