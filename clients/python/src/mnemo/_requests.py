"""The old name of `mnemo._core.requests`, kept importable for code that used it."""

import sys

from mnemo._core import requests

sys.modules[__name__] = requests
