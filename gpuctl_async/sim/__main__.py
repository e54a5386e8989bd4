"""``python -m gpuctl_async.sim``: the simulated cluster, standalone (see ``cli``)."""

import sys

from gpuctl_async.sim.cli import main

sys.exit(main())
