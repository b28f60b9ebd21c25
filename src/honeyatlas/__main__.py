from honeyatlas.cli import main

raise SystemExit(main())
