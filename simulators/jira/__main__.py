"""``python -m simulators.jira``: run the simulator in the foreground."""

from simulators.jira import main

raise SystemExit(main())
