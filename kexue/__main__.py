"""``python -m kexue`` is the ``kexue`` command."""

import sys

from kexue.platform.cli import main

sys.exit(main())
