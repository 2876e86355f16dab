"""``python -m kexue`` is the ``kexue`` command."""

import sys

from kexue.cli import main

sys.exit(main())
