from opsbot.cli import main

raise SystemExit(main())
