"""``python -m simulators.jenkins``: run the simulator in the foreground."""

from simulators.jenkins import main

raise SystemExit(main())
