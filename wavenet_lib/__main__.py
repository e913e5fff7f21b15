"""`python -m wavenet_lib ...`: the wavenet-eda command line."""

from wavenet_lib.cli import main

raise SystemExit(main())
