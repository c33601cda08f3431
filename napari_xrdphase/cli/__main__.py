"""``python -m napari_xrdphase.cli``: the ``xrdphase`` command."""

import sys

from . import main

sys.exit(main())
