"""``python -m grownet`` (and ``torchrun -m grownet``) runs the command line."""

import sys

from grownet.cli import main

sys.exit(main())
