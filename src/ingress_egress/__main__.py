import sys

from ingress_egress.cli import main

sys.exit(main())
