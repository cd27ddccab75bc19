"""Reads a server's /metrics the way Prometheus does: over HTTP, as text."""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Scrape:
    """The samples of one scrape, and the family (name, type) pairs seen."""

    samples: list[tuple[str, dict[str, str], float]]
    families: dict[str, str]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples called `name` whose labels include `labels`; 0 when none."""
        return sum(
            v for n, have, v in self.samples if n == name and all(have.get(k) == w for k, w in labels.items())
        )

    def has(self, name: str, **labels: str) -> bool:
        return any(
            n == name and all(have.get(k) == w for k, w in labels.items()) for n, have, _ in self.samples
        )

    def labels(self, name: str, label: str) -> set[str]:
        return {have[label] for n, have, _ in self.samples if n == name and label in have}

    def exposed_names(self) -> set[str]:
        """Family names as docs/operations.md lists them: counters with _total,
        without prometheus_client's _created companions."""
        out = set()
        for name, kind in self.families.items():
            if name.endswith("_created"):
                continue
            out.add(name + "_total" if kind == "counter" else name)
        return out


def scrape(port: int) -> Scrape:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples = []
    families = {}
    for family in text_string_to_metric_families(text):
        families[family.name] = family.type
        for sample in family.samples:
            samples.append((sample.name, dict(sample.labels), sample.value))
    return Scrape(samples, families)
