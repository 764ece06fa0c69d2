"""``python -m simulators.loki``: run the simulator in the foreground."""

from simulators.loki import main

raise SystemExit(main())
