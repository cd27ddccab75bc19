"""The old name of `mnemo._core.jsonl`, kept importable for code that used it."""

import sys

from mnemo._core import jsonl

sys.modules[__name__] = jsonl
