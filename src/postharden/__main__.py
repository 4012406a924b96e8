from postharden.cli import main

raise SystemExit(main())
