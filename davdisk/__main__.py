"""``python -m davdisk`` runs the command line."""

from davdisk.cli import main

raise SystemExit(main())
