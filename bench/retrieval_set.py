"""The labelled retrieval set of bench/retrieval_bench.py, generated deterministically.

    python bench/retrieval_set.py            # rewrites bench/data/retrieval_set.json
    python bench/retrieval_set.py --check    # fails if the committed file is stale

Eight users hold 80 memories each (640 in all); each user asks 30 queries
(240 in all), each with exactly one relevant memory of that user. A user's
memories are of seven families, drawn with one seeded random.Random:

* 20 personal facts ("I am allergic to peanuts"), asked in paraphrase with
  other words ("what food must I avoid?"): kind `paraphrase` (10 per user);
* 10 flights, 10 orders, 8 app upgrades and 8 support tickets that differ
  only in their identifiers ("LH440", "A-7731", "v2.3.1", "INC-20417"),
  asked by identifier: kind `identifier` (10 per user);
* 8 door codes asked by the number ("what is 4471 the code of?"): kind `number` (2);
* 8 people asked by full name: kind `name` (4);
* 8 dated appointments asked by date ("what is on 2025-04-17?"): kind `date` (4).

Same-family memories are near-duplicates in meaning, as real agent memories
are ("booked flight X to Y"), so a vector search cannot tell them apart by
identifier; paraphrases share no content word with their memory, so a
keyword search cannot find them. Identifiers are unique in the whole set.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

PATH = Path(__file__).resolve().parent / "data" / "retrieval_set.json"
SEED = 14
USERS = 8

FACTS = [
    ("I am allergic to peanuts.", "what food must I avoid?"),
    ("My favourite city is Lisbon.", "which place do I love most?"),
    ("I drive a blue bicycle to work.", "how do I commute?"),
    ("My sister is called Mia.", "what is the name of my sibling?"),
    ("I am training for a marathon in October.", "which race am I preparing for?"),
    ("I prefer vegetarian restaurants.", "what kind of places do I like to eat at?"),
    ("My cat sleeps on the windowsill.", "where does my pet nap?"),
    ("I play the trumpet in a jazz band.", "what instrument do I perform with?"),
    ("I moved to Berlin three years ago.", "when did I relocate?"),
    ("My laptop is a ten year old ThinkPad.", "what computer do I use?"),
    ("I drink two espressos every morning.", "how much coffee do I have?"),
    ("I am learning Japanese on weekends.", "which language am I studying?"),
    ("My daughter starts school in September.", "when does my child begin classes?"),
    ("I hate flying at night.", "what travel do I dislike?"),
    ("My passport expires next spring.", "when do I need a new travel document?"),
    ("I grow tomatoes on the balcony.", "what vegetables do I cultivate at home?"),
    ("I cannot eat gluten.", "what is my dietary restriction?"),
    ("My favourite film is Spirited Away.", "which movie do I like best?"),
    ("I run five kilometres before breakfast.", "what exercise do I do early?"),
    ("My landlord is raising the rent in May.", "when will my housing cost go up?"),
    ("I keep spare keys with the neighbour.", "who has a copy of my house key?"),
    ("I am saving money for a sailboat.", "what am I putting cash aside for?"),
    ("My dentist is on Oak Street.", "where is my tooth doctor?"),
    ("I volunteer at the animal shelter on Saturdays.", "what charity work do I do?"),
    ("I wear contact lenses.", "how do I correct my eyesight?"),
    ("My car needs new tyres.", "what does my vehicle require?"),
    ("I sing in the church choir.", "which musical group am I part of?"),
    ("My grandmother turns ninety in June.", "whose big birthday is coming up?"),
    ("I work night shifts at the hospital.", "what are my job hours?"),
    ("I am afraid of spiders.", "what creatures scare me?"),
]
AIRLINES = ["LH", "BA", "AF", "KL", "UA", "DL", "IB", "AZ", "SK", "OS"]
CITIES = [
    "Boston",
    "Madrid",
    "Oslo",
    "Lima",
    "Cairo",
    "Denver",
    "Porto",
    "Seoul",
    "Quito",
    "Perth",
    "Dublin",
    "Milan",
]
PRODUCTS = [
    "desk lamp",
    "phone case",
    "rain jacket",
    "coffee grinder",
    "yoga mat",
    "backpack",
    "kettle",
    "monitor",
]
APPS = ["the mobile app", "the billing service", "the web client", "the sync daemon"]
BUGS = [
    "a login crash",
    "slow startup",
    "a memory leak",
    "broken uploads",
    "wrong totals",
    "a timezone error",
]
PLACES = ["office", "gym", "garage", "storage unit", "bike room", "studio", "cellar", "roof terrace"]
FIRST = [
    "Ana",
    "Ben",
    "Chloe",
    "Dmitri",
    "Elif",
    "Farid",
    "Greta",
    "Hiro",
    "Ines",
    "Jonas",
    "Kaia",
    "Luca",
    "Mina",
]
LAST = [
    "Okafor",
    "Lindqvist",
    "Moreau",
    "Tanaka",
    "Novak",
    "Haddad",
    "Ferreira",
    "Kowalski",
    "Sato",
    "Brennan",
]
ROLES = [
    "accountant",
    "plumber",
    "landlord",
    "physiotherapist",
    "lawyer",
    "piano teacher",
    "mechanic",
    "tutor",
]
EVENTS = [
    "dentist appointment",
    "tax deadline",
    "parent evening",
    "car inspection",
    "team offsite",
    "eye exam",
]


def build(seed: int = SEED) -> dict[str, Any]:
    rng = random.Random(seed)
    used: set[str] = set()

    def unique(make: Any) -> str:
        while True:
            value = make()
            if value not in used:
                used.add(value)
                return value

    memories: list[dict[str, str]] = []
    queries: list[dict[str, str]] = []

    def add(user: str, content: str) -> str:
        memory_id = f"m{len(memories):04d}"
        memories.append({"id": memory_id, "user_id": user, "content": content})
        return memory_id

    def ask(user: str, text: str, kind: str, relevant: str) -> None:
        queries.append(
            {"id": f"q{len(queries):04d}", "user_id": user, "query": text, "kind": kind, "relevant": relevant}
        )

    for u in range(USERS):
        user = f"user-{u}"
        facts = rng.sample(FACTS, 20)
        fact_ids = [add(user, memory) for memory, _ in facts]
        identified: list[tuple[str, str]] = []
        for _ in range(10):
            code = unique(lambda: f"{rng.choice(AIRLINES)}{rng.randint(100, 9999)}")
            a, b = rng.sample(CITIES, 2)
            identified.append((add(user, f"Booked flight {code} from {a} to {b}."), f"flight {code}"))
        for _ in range(10):
            order = unique(lambda: f"{rng.choice('ABCDEFGH')}-{rng.randint(1000, 9999)}")
            product = rng.choice(PRODUCTS)
            identified.append(
                (add(user, f"Order {order} for a {product} has shipped."), f"where is order {order}?")
            )
        for _ in range(8):
            version = unique(lambda: f"v{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 30)}")
            identified.append(
                (
                    add(user, f"Upgraded {rng.choice(APPS)} to {version} to fix {rng.choice(BUGS)}."),
                    f"what changed in {version}?",
                )
            )
        for _ in range(8):
            ticket = unique(lambda: f"INC-{rng.randint(10000, 99999)}")
            identified.append(
                (
                    add(user, f"Support ticket {ticket} about {rng.choice(BUGS)} is still open."),
                    f"status of {ticket}",
                )
            )
        codes = []
        for place in rng.sample(PLACES, 8):
            number = unique(lambda: str(rng.randint(1000, 9999)))
            codes.append(
                (add(user, f"The door code for the {place} is {number}."), f"what is {number} the code of?")
            )
        people = []
        for role in rng.sample(ROLES, 8):
            name = unique(lambda: f"{rng.choice(FIRST)} {rng.choice(LAST)}")
            people.append((add(user, f"{name} is my {role}."), f"who is {name}?"))
        dated = []
        for _ in range(8):
            date = unique(lambda: f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}")
            dated.append((add(user, f"The {rng.choice(EVENTS)} is on {date}."), f"what is on {date}?"))
        for i in rng.sample(range(20), 10):
            ask(user, facts[i][1], "paraphrase", fact_ids[i])
        for memory_id, text in rng.sample(identified, 10):
            ask(user, text, "identifier", memory_id)
        for memory_id, text in rng.sample(codes, 2):
            ask(user, text, "number", memory_id)
        for memory_id, text in rng.sample(people, 4):
            ask(user, text, "name", memory_id)
        for memory_id, text in rng.sample(dated, 4):
            ask(user, text, "date", memory_id)
    return {"seed": seed, "memories": memories, "queries": queries}


def filler(n: int, seed: int = 7) -> list[str]:
    """`n` more memories of the same families (for latency at scale); their
    identifiers may repeat, their wording is that of the labelled set."""
    rng = random.Random(seed)
    makers = [
        lambda: rng.choice(FACTS)[0],
        lambda: (
            f"Booked flight {rng.choice(AIRLINES)}{rng.randint(100, 9999)}"
            f" from {rng.choice(CITIES)} to {rng.choice(CITIES)}."
        ),
        lambda: (
            f"Order {rng.choice('ABCDEFGH')}-{rng.randint(1000, 9999)}"
            f" for a {rng.choice(PRODUCTS)} has shipped."
        ),
        lambda: (
            f"Upgraded {rng.choice(APPS)} to v{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 30)}"
            f" to fix {rng.choice(BUGS)}."
        ),
        lambda: f"Support ticket INC-{rng.randint(10000, 99999)} about {rng.choice(BUGS)} is still open.",
        lambda: f"The door code for the {rng.choice(PLACES)} is {rng.randint(1000, 9999)}.",
        lambda: f"{rng.choice(FIRST)} {rng.choice(LAST)} is my {rng.choice(ROLES)}.",
        lambda: f"The {rng.choice(EVENTS)} is on 2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}.",
    ]
    return [rng.choice(makers)() for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="fail if the committed file differs")
    args = parser.parse_args()
    text = json.dumps(build(), indent=1) + "\n"
    if args.check:
        if not PATH.exists() or PATH.read_text() != text:
            sys.exit(f"{PATH} is stale: run python bench/retrieval_set.py")
        print(f"{PATH.name} is up to date")
        return
    PATH.parent.mkdir(exist_ok=True)
    PATH.write_text(text)
    data = build()
    print(f"wrote {PATH}: {len(data['memories'])} memories, {len(data['queries'])} queries")


if __name__ == "__main__":
    main()
