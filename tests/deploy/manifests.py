"""Reading the deployment files as the tools would, without the tools: a
kustomization tree resolved into its documents (what `kubectl kustomize`
renders, minus the transformers), and the Compose file's services per profile.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
FLEET = K8S / "fleet"


def kustomization(directory: Path) -> dict[str, Any]:
    data = yaml.safe_load((directory / "kustomization.yaml").read_text())
    assert isinstance(data, dict) and data["kind"] == "Kustomization", directory
    return data


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """Every document `kubectl apply -k directory` applies, following
    resources that are directories (other kustomizations) as kustomize does."""
    docs: list[dict[str, Any]] = []
    for resource in kustomization(directory)["resources"]:
        path = (directory / resource).resolve()
        assert path.exists(), f"{directory}/kustomization.yaml: {resource} does not exist"
        if path.is_dir():
            docs += kustomize(path)
            continue
        assert path.parent == directory.resolve(), f"{resource}: kustomize loads no file outside {directory}"
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"], path
            docs.append(doc)
    return docs


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{len(found)} {kind}/{name}"
    return found[0]


def compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def services(profile: str | None = None) -> dict[str, dict[str, Any]]:
    """The services `docker compose [--profile profile] up` starts."""
    return {
        name: service
        for name, service in compose()["services"].items()
        if not service.get("profiles") or profile in service["profiles"]
    }
