"""A small agent loop with long-term memory, in Python.

Each user turn: recall what is known about the user (search), answer with it,
then remember what the user said about themselves (create, deduplicated by
the server). Start a server first (`bash .ci/serve`), then:

    .venv/bin/python examples/agent_loop.py            # MNEMO_ADDRESS, else localhost:50051

A real agent would put the recalled memories into its model's prompt; this one
only prints them, so it runs without a model or an API key.
"""

from __future__ import annotations

import os
import sys
import uuid

from mnemo import MnemoClient

TURNS = [
    "I am allergic to peanuts.",
    "I live in Lisbon and I cycle to work.",
    "Suggest a snack for my ride.",
    "What should I never eat?",
]


def reply(turn: str, recalled: list[str]) -> str:
    """Stands in for the model: a prompt with the recalled memories."""
    context = "; ".join(recalled) or "nothing yet"
    return f"(knowing: {context}) -> answer to {turn!r}"


def main() -> int:
    user = os.environ.get("AGENT_USER") or f"example-{uuid.uuid4().hex[:8]}"
    with MnemoClient() as client:
        for turn in TURNS:
            hits = client.search(turn, user_id=user, top_k=3, min_score=0.2).hits
            recalled = [hit.memory.content for hit in hits]
            print(f"user:  {turn}")
            print(f"agent: {reply(turn, recalled)}")
            if turn.startswith("I "):  # a statement about the user: worth keeping
                client.create(turn, user_id=user, agent_id="example-agent", kind="semantic", tags=["profile"])
        final = client.search("food the user must avoid", user_id=user, top_k=1).hits
        print(f"recalled: {final[0].memory.content if final else '-'}")
        client.delete_memories(user_id=user)  # leave the server as we found it
    return 0


if __name__ == "__main__":
    sys.exit(main())
