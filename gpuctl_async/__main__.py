import sys

from gpuctl_async.cli import main

sys.exit(main())
