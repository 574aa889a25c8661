from cilium_sandbox.cli import main

raise SystemExit(main())
