"""``python -m ml_toolbox``: the ``ml-toolbox`` command line (see :mod:`ml_toolbox.cli`)."""

import sys

from ml_toolbox.cli import main

if __name__ == "__main__":
    sys.exit(main())
