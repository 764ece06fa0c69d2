"""``python -m simulators.github``: run the simulator in the foreground."""

from simulators.github import main

raise SystemExit(main())
