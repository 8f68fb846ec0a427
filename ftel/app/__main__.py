"""`python -m ftel.app`: the console script, as `ftel run` starts its children."""

import sys

from ftel.app.cli import main

sys.exit(main())
