"""``python -m aurora_sync_ops.cli``: the same as the ``aurora-sync`` command."""

import sys

from . import main

sys.exit(main())
