from pytest_cilium_upgrade.cli import main

raise SystemExit(main())
