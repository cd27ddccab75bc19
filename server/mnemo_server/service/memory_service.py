"""MemoryService: the one object the API layer and app.py hold, composed of
the use-case mixins over ServiceState (state.py)."""

from __future__ import annotations

from mnemo_server.service.lifecycle import Lifecycle
from mnemo_server.service.reads import Reads
from mnemo_server.service.search import Search
from mnemo_server.service.stats import Statistics


class MemoryService(Lifecycle, Search, Reads, Statistics):
    """Use-cases over one store, one index and one embedder (the parts are
    listed in the package docstring; ServiceState holds what they share)."""
