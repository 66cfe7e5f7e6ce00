"""``python -m ingress_egress.simulator``: the simulator's CLI."""

from ingress_egress.simulator.cli import main

raise SystemExit(main())
