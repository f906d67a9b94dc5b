import sys

from bench.micro.suite import console_main

sys.exit(console_main())
