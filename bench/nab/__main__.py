import sys

from bench.nab.runner import main

sys.exit(main())
