"""``python -m hsslin`` and the ``hsslin`` command (see :mod:`hsslin._cli`)."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
