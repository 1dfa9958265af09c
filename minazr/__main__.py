from minazr.cli import main

raise SystemExit(main())
