import sys

from vpop.cli.commands import main

sys.exit(main())
