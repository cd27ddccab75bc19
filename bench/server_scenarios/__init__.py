"""The parts of bench/server_bench.py, the end-to-end benchmark of the server.

* `settings`: sizes and constants, and the Plan of how long each phase runs;
* `dataset`: seeded vectors, users and scopes, exact answers, requests;
* `baselines`: raw FAISS and the embedding model, measured in this process;
* `scenarios`: the phases against a running server, each adding its rows;
* `section`: one size's table, its header and the --out file update;
* `run`: one size, from data to restart.
"""
