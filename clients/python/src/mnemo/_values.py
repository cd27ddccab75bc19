"""The old name of `mnemo._core.values`, kept importable for code that used it."""

import sys

from mnemo._core import values

sys.modules[__name__] = values
