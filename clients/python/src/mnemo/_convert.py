"""The old name of `mnemo._core.conversions`, kept importable for code that used it."""

import sys

from mnemo._core import conversions

sys.modules[__name__] = conversions
