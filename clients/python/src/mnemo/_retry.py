"""The old name of `mnemo._core.retry`, kept importable for code that used it."""

import sys

from mnemo._core import retry

sys.modules[__name__] = retry
