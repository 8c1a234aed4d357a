"""``python -m videomix_dali.tools.bench``: the bench without the console script."""

import sys

from .cli import main

sys.exit(main())
