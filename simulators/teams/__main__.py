"""``python -m simulators.teams``: run the simulator in the foreground."""

from simulators.teams import main

raise SystemExit(main())
