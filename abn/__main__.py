"""``python -m abn``."""

import sys

from abn.cli import main

if __name__ == "__main__":
    sys.exit(main())
