import sys

from octomon.sim.server import main

sys.exit(main())
