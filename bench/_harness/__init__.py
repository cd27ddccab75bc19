"""Helpers the benchmarks and the tests' server helpers share.

* `process`: one `python -m mnemo_server` subprocess on an ephemeral port, its
  log read in the background, health, CPU and memory of the process, stop/kill;
* `load`: timers and closed-loop load generators, with the cores used meanwhile;
* `report`: percentiles, number formats and markdown tables.

Bench scripts run as `python bench/NAME.py`, which puts `bench/` on sys.path;
pytest adds it too (`pythonpath` in pyproject.toml), so both import `_harness.*`.
"""
