import sys

from billing.entrypoints.cli import main

sys.exit(main())
