"""``python -m simulators.slack``: run the simulator in the foreground."""

from simulators.slack import main

raise SystemExit(main())
