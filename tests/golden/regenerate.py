"""Regenerates the golden files from the Python runner (CI never does).

    .venv/bin/python tests/golden/regenerate.py

Review the diff before committing: a golden file records what users get.
"""

from __future__ import annotations

from harness import EXPECTED, canonical_transcripts, dump, expected_path, run_python, start_server, topics


def main() -> None:
    EXPECTED.mkdir(exist_ok=True)
    server = start_server()
    try:
        for topic, cases in topics().items():
            transcripts = canonical_transcripts(run_python(cases, server.address))
            expected_path(topic).write_text(dump(transcripts))
            print(f"wrote {expected_path(topic).relative_to(EXPECTED.parents[2])}: {len(cases)} cases")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
