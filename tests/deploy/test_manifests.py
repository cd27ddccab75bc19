"""The deployment files hang together: the Dockerfile, deploy/docker-compose.yml
and deploy/k8s/ agree on ports, paths, users, probes and setting names, and
the image's health probe script works against a real gRPC health service.

No Docker engine or cluster is needed: the files are parsed and cross-checked.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from manifests import DEPLOY, K8S, ROOT, compose, find, kustomization, kustomize, services

from mnemo_server.api.server import SERVICE_NAMES
from mnemo_server.config import setting_names

GRPC_PORT = 50051
METRICS_PORT = 9464
DATA_DIR = "/data"
MEMORY_SERVICE = "mnemo.v1.MemoryService"
SETTING_ENV = {env for _s, _f, env, *_ in setting_names()}


# -- Dockerfile ------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    args: str
    stage: int


def dockerfile() -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped."""
    out: list[Instruction] = []
    stage = -1
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        out.append(Instruction(keyword, args.strip(), stage))
    assert not pending, "the Dockerfile ends in a continuation"
    return out


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


def env_of(instructions: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for i in instructions:
        if i.keyword == "ENV":
            for item in shlex.split(i.args):
                name, sep, value = item.partition("=")
                assert sep, f"use ENV NAME=VALUE: {i.args}"
                env[name] = value
    return env


def test_dockerfile_is_multi_stage_with_a_cpu_torch_builder() -> None:
    instructions = dockerfile()
    stages = [i.args for i in instructions if i.keyword == "FROM"]
    assert len(stages) == 2
    assert re.search(r"\bAS builder$", stages[0], re.IGNORECASE)
    assert re.search(r"\bAS runtime$", stages[1], re.IGNORECASE)
    builder = [i for i in instructions if i.stage == 0]
    runs = [i.args for i in builder if i.keyword == "RUN"]
    torch_pin = next(
        d
        for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
        if d.startswith("torch")
    )
    torch = [r for r in runs if "torch" in r and "--index-url" in r]
    assert torch, "torch must come from the CPU-only index"
    assert f'"{torch_pin}"' in torch[0] or torch_pin in torch[0].split()
    assert "https://download.pytorch.org/whl/cpu" in torch[0]
    # torch is installed before the server, so the server's pin finds it satisfied.
    assert runs.index(torch[0]) < next(i for i, r in enumerate(runs) if "./clients/python ." in r)
    # The build proves the bundled model loads offline.
    assert any("HF_HUB_OFFLINE=1" in r and "SentenceTransformerEmbedder" in r for r in runs)
    runtime = final_stage(instructions)
    copies = [i.args for i in runtime if i.keyword == "COPY"]
    assert any(c.startswith("--from=builder ") for c in copies)


def test_dockerfile_copies_only_files_that_exist() -> None:
    for i in dockerfile():
        if i.keyword != "COPY" or i.args.startswith("--from="):
            continue
        *sources, _dest = shlex.split(i.args)
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"


def test_runtime_runs_as_a_non_root_user_with_a_data_volume() -> None:
    runtime = final_stage(dockerfile())
    users = [i.args for i in runtime if i.keyword == "USER"]
    assert users, "no USER: the server would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert any("useradd" in i.args and f" {user}" in i.args for i in runtime if i.keyword == "RUN")
    volumes = [v for i in runtime if i.keyword == "VOLUME" for v in json.loads(i.args)]
    assert volumes == [DATA_DIR]
    env = env_of(runtime)
    assert env["MNEMO_DATA_DIR"] == DATA_DIR
    # The volume must belong to that user, or the first write fails.
    assert any(f"chown {user}:{user} {DATA_DIR}" in i.args for i in runtime if i.keyword == "RUN")


def test_runtime_serves_grpc_and_metrics_on_the_exposed_ports() -> None:
    runtime = final_stage(dockerfile())
    exposed = {int(p.split("/")[0]) for i in runtime if i.keyword == "EXPOSE" for p in i.args.split()}
    assert exposed == {GRPC_PORT, METRICS_PORT}
    env = env_of(runtime)
    assert env["MNEMO_ADDRESS"] == f"0.0.0.0:{GRPC_PORT}"
    assert env["MNEMO_METRICS_ADDRESS"] == f"0.0.0.0:{METRICS_PORT}"
    assert env["HF_HUB_OFFLINE"] == "1"
    for name in env:
        if name.startswith("MNEMO_"):
            assert name in SETTING_ENV, f"ENV {name} is not a setting"
    (entrypoint,) = [json.loads(i.args) for i in runtime if i.keyword == "ENTRYPOINT"]
    assert entrypoint == ["mnemo-server"]
    # The base image's CMD ["python3"] must not become an argument.
    assert [json.loads(i.args) for i in runtime if i.keyword == "CMD"] == [[]]


def test_healthcheck_asks_grpc_health_through_the_installed_probe() -> None:
    instructions = dockerfile()
    runtime = final_stage(instructions)
    (check,) = [i.args for i in runtime if i.keyword == "HEALTHCHECK"]
    options, _, command = check.partition("CMD ")
    assert "--start-period=" in options
    argv = json.loads(command)
    assert argv == ["mnemo-healthcheck", MEMORY_SERVICE]
    # The probe is the script below, copied into the virtualenv the runtime stage takes whole.
    assert any(
        i.keyword == "COPY" and i.args == "deploy/healthcheck.py /opt/mnemo/bin/mnemo-healthcheck"
        for i in instructions
    )
    assert any(
        i.keyword == "COPY" and i.args.startswith("--from=builder /opt/mnemo /opt/mnemo") for i in runtime
    )
    assert "/opt/mnemo/bin" in env_of(runtime)["PATH"]


# -- the probe script, against a real health service ---------------------------------


@pytest.fixture
def health_server() -> Iterator[tuple[int, health.HealthServicer]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port, servicer
    server.stop(0)


def probe(port: int, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(DEPLOY / "healthcheck.py"), *args],
        env={**os.environ, "MNEMO_ADDRESS": f"0.0.0.0:{port}", **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_probe_exits_0_only_when_serving(health_server: tuple[int, health.HealthServicer]) -> None:
    port, servicer = health_server
    servicer.set(MEMORY_SERVICE, health_pb2.HealthCheckResponse.NOT_SERVING)
    result = probe(port)
    assert result.returncode == 1
    assert result.stdout.strip() == "NOT_SERVING"
    servicer.set(MEMORY_SERVICE, health_pb2.HealthCheckResponse.SERVING)
    result = probe(port)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "SERVING"
    # The whole server ("") is a separate entry.
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    assert probe(port, "").returncode == 1


def test_probe_fails_when_nothing_listens(health_server: tuple[int, health.HealthServicer]) -> None:
    port, _ = health_server
    result = probe(port, "no.such.Service")
    assert result.returncode == 1
    assert "NOT_FOUND" in result.stderr
    result = probe(1, env={"MNEMO_HEALTHCHECK_TIMEOUT_S": "2"})
    assert result.returncode == 1
    assert "unhealthy" in result.stderr


def test_probe_speaks_tls_when_the_server_does(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    servicer.set(MEMORY_SERVICE, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    credentials = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    try:
        assert probe(port, env={"MNEMO_HEALTHCHECK_TIMEOUT_S": "2"}).returncode == 1  # plaintext is refused
        result = probe(port, env={"MNEMO_TLS_CERT_FILE": str(cert)})
        assert result.returncode == 0, result.stderr
    finally:
        server.stop(0)


# -- docker compose --------------------------------------------------------------------


def test_compose_runs_mnemo_with_redis_health_and_a_volume() -> None:
    data = compose()
    by_default = services()
    assert set(by_default) == {"mnemo", "redis"}  # the fleet's services are in a profile
    mnemo, redis = by_default["mnemo"], by_default["redis"]
    assert (
        DEPLOY / mnemo["build"]["context"] / mnemo["build"]["dockerfile"]
    ).resolve() == ROOT / "Dockerfile"
    env = mnemo["environment"]
    assert env["MNEMO_REDIS_URL"].startswith("redis://redis:6379")
    assert "MNEMO_AUTH_BOOTSTRAP_KEY" in env
    for name in env:
        assert name in SETTING_ENV, f"{name} is not a setting"
    assert mnemo["healthcheck"]["test"] == ["CMD", "mnemo-healthcheck", MEMORY_SERVICE]
    assert mnemo["depends_on"]["redis"]["condition"] == "service_healthy"
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    volume, _, path = mnemo["volumes"][0].partition(":")
    assert path == DATA_DIR
    assert volume in data["volumes"]
    published = {int(p.rsplit(":", 1)[1]) for p in mnemo["ports"]}
    assert published == {GRPC_PORT, METRICS_PORT}


# -- Kubernetes ------------------------------------------------------------------------


def k8s_documents() -> list[dict[str, Any]]:
    """What `kubectl apply -k deploy/k8s` (the single server) applies."""
    return kustomize(K8S)


def one(kind: str, name: str) -> dict[str, Any]:
    return find(k8s_documents(), kind, name)


def test_every_kustomization_lists_every_manifest_beside_it() -> None:
    directories = sorted(p.parent for p in K8S.rglob("kustomization.yaml"))
    assert {d.name for d in directories} == {"k8s", "redis", "postgres", "fleet"}
    for directory in directories:
        listed = {r for r in kustomization(directory)["resources"] if not (directory / r).is_dir()}
        assert listed == {p.name for p in directory.glob("*.yaml")} - {"kustomization.yaml"}, directory
        kustomize(directory)  # every resource resolves


def container() -> dict[str, Any]:
    (found,) = one("StatefulSet", "mnemo")["spec"]["template"]["spec"]["containers"]
    return found


def ports_by_name(c: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in c["ports"]}


def env_by_name(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value") for e in c["env"]}


def test_statefulset_probes_grpc_health_on_the_grpc_port() -> None:
    c = container()
    ports = ports_by_name(c)
    assert ports == {"grpc": GRPC_PORT, "metrics": METRICS_PORT}
    assert c["readinessProbe"]["grpc"] == {"port": ports["grpc"], "service": MEMORY_SERVICE}
    assert MEMORY_SERVICE in SERVICE_NAMES
    assert c["livenessProbe"]["grpc"]["port"] == ports["grpc"]
    assert c["livenessProbe"]["grpc"].get("service", "") == ""
    startup = c["startupProbe"]
    assert startup["grpc"]["port"] == ports["grpc"]
    # Liveness must not kill a pod that is still loading its index.
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300
    env = env_by_name(c)
    assert env["MNEMO_ADDRESS"] == f"0.0.0.0:{ports['grpc']}"
    assert env["MNEMO_METRICS_ADDRESS"] == f"0.0.0.0:{ports['metrics']}"
    annotations = one("StatefulSet", "mnemo")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(ports["metrics"])


def test_statefulset_keeps_data_on_a_claim_and_runs_as_the_image_user() -> None:
    sts = one("StatefulSet", "mnemo")
    spec = sts["spec"]
    assert spec["replicas"] == 1  # SQLite: one writer per volume
    (claim,) = spec["volumeClaimTemplates"]
    c = container()
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == DATA_DIR
    assert env_by_name(c)["MNEMO_DATA_DIR"] == DATA_DIR
    assert claim["spec"]["resources"]["requests"]["storage"]
    pod = spec["template"]["spec"]
    runtime = final_stage(dockerfile())
    useradd = next(i.args for i in runtime if i.keyword == "RUN" and "useradd" in i.args)
    found = re.search(r"--uid (\d+)", useradd)
    assert found, useradd
    uid = int(found.group(1))
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == uid
    assert pod["securityContext"]["fsGroup"] == uid
    for kind in ("requests", "limits"):
        assert c["resources"][kind]["memory"] and c["resources"][kind]["cpu"]
    headless = one("Service", spec["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    for name in env_by_name(c):
        assert name in SETTING_ENV, f"{name} is not a setting"


def test_bootstrap_key_comes_from_a_secret_file() -> None:
    c = container()
    pod = one("StatefulSet", "mnemo")["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if "secret" in v]
    assert volume["secret"]["secretName"] == "mnemo-bootstrap"
    (item,) = volume["secret"]["items"]
    (mount,) = [m for m in c["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["readOnly"] is True
    assert env_by_name(c)["MNEMO_AUTH_BOOTSTRAP_KEY_FILE"] == f"{mount['mountPath']}/{item['path']}"
    # Readable by the pod's group (fsGroup), not only by root.
    assert volume["secret"]["defaultMode"] & 0o040


def test_services_target_the_containers() -> None:
    sts = one("StatefulSet", "mnemo")
    labels = sts["spec"]["template"]["metadata"]["labels"]
    assert sts["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ports = ports_by_name(container())
    service = one("Service", "mnemo")
    assert service["spec"]["selector"].items() <= labels.items()
    by_name = {p["name"]: p for p in service["spec"]["ports"]}
    for name in ("grpc", "metrics"):
        target = by_name[name]["targetPort"]
        assert ports[target] if isinstance(target, str) else target in ports.values()
    assert by_name["grpc"]["port"] == GRPC_PORT
    assert by_name["grpc"]["targetPort"] in ("grpc", ports["grpc"])


def test_redis_deployment_and_service_match_the_url() -> None:
    deployment = one("Deployment", "mnemo-redis")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = one("Service", "mnemo-redis")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (redis,) = deployment["spec"]["template"]["spec"]["containers"]
    redis_ports = ports_by_name(redis)
    url = env_by_name(container())["MNEMO_REDIS_URL"]
    match = re.fullmatch(r"redis://([\w.-]+):(\d+)/\d+", url)
    assert match, url
    assert match.group(1) == service["metadata"]["name"]
    (port,) = service["spec"]["ports"]
    assert int(match.group(2)) == port["port"]
    assert redis_ports[port["targetPort"]] == 6379
    assert redis["readinessProbe"]


# -- shutdown budget, start-up probe, published ports, build context -------------------

_SETTINGS = {(section, name): default for section, name, _e, _f, default, _d in setting_names()}
# What a stop takes at most before the final snapshot: the drain, then the grace.
STOP_S = _SETTINGS[("server", "shutdown_drain_s")] + _SETTINGS[("server", "shutdown_grace_s")]
SNAPSHOT_MARGIN_S = 20


def _seconds(text: str) -> float:
    found = re.fullmatch(r"(\d+)s", str(text))
    assert found, text
    return float(found.group(1))


def test_every_runtime_waits_for_the_drain_the_grace_and_the_snapshot() -> None:
    pod = one("StatefulSet", "mnemo")["spec"]["template"]["spec"]
    pre_stop = container()["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] >= float(pre_stop[1]) + STOP_S + SNAPSHOT_MARGIN_S
    assert _seconds(compose()["services"]["mnemo"]["stop_grace_period"]) >= STOP_S + SNAPSHOT_MARGIN_S
    docs = [ROOT / "README.md", ROOT / "Dockerfile", ROOT / "docs" / "operations.md", DEPLOY / "README.md"]
    runs = [line for path in docs for line in path.read_text().splitlines() if "docker run -" in line]
    assert runs, "no docker run example"
    for line in runs:
        found = re.search(r"--stop-timeout (\d+)", line)
        assert found and int(found.group(1)) >= STOP_S + SNAPSHOT_MARGIN_S, line


def test_docker_run_examples_publish_metrics_on_loopback_only() -> None:
    docs = [ROOT / "README.md", ROOT / "Dockerfile", ROOT / "docs" / "operations.md", DEPLOY / "README.md"]
    for path in docs:
        for port in re.findall(r"-p (\S+):9464\b", path.read_text()):
            assert port.startswith("127.0.0.1:"), f"{path.name}: /metrics published on {port}"
    for published in compose()["services"]["mnemo"]["ports"]:
        assert published.startswith("127.0.0.1:"), published


def test_startup_probe_allows_slow_answers_while_the_model_loads() -> None:
    startup = container()["startupProbe"]
    assert startup.get("timeoutSeconds", 1) >= 10
    assert startup["periodSeconds"] >= startup["timeoutSeconds"]


def test_dockerignore_keeps_the_checkout_out_but_not_what_the_build_copies() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:
        parts = path.split("/")
        for pattern in patterns:
            bare = pattern.removeprefix("**/")
            if pattern.startswith("**/"):
                if any(Path(p).match(bare) for p in parts):
                    return True
            elif path == pattern or path.startswith(pattern + "/"):
                return True
        return False

    for heavy in (
        ".git",
        ".venv",
        "clients/node/node_modules",
        "mnemo-data",
        "server/mnemo_server/__pycache__",
    ):
        assert ignored(heavy), heavy
    sources = [i.args.split()[-2] for i in dockerfile() if i.keyword == "COPY" and "--from" not in i.args]
    assert sources, "no COPY in the Dockerfile"
    for source in sources:
        assert not ignored(source), f".dockerignore drops {source}, which the Dockerfile copies"
