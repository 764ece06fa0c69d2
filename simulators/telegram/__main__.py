"""``python -m simulators.telegram``: run the simulator in the foreground."""

from simulators.telegram import main

raise SystemExit(main())
