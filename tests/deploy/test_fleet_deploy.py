"""The fleet's deployment files: Compose's profile `fleet` (PostgreSQL, Redis,
one service scaled to 3 replicas behind an Envoy gRPC front) and
deploy/k8s/fleet (a Deployment of 3 replicas, a PodDisruptionBudget, Redis,
and PostgreSQL as an external dependency with a reference StatefulSet) agree
with each other, with the settings and with the single-server files, and
docs/operations.md says how to scale, fail over, back up and upgrade them.

No Docker engine or cluster is needed: the files are parsed and cross-checked
(manifests.py resolves kustomizations as kustomize does).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from manifests import DEPLOY, FLEET, K8S, ROOT, compose, find, kustomization, kustomize, services

from mnemo_server.api.server import SERVICE_NAMES
from mnemo_server.config import setting_names

MEMORY_SERVICE = "mnemo.v1.MemoryService"
GRPC_PORT = 50051
REPLICAS = 3
SETTINGS = {(section, name): default for section, name, _e, _f, default, _d in setting_names()}
SETTING_ENV = {env for _s, _n, env, *_ in setting_names()}
STOP_S = SETTINGS[("server", "shutdown_drain_s")] + SETTINGS[("server", "shutdown_grace_s")]
#: Connections one replica opens: the pool, 2 for API keys, 2 for the listener and the leader lock,
#: 2 for extraction jobs (docs/operations.md, "Pool" and "Connections").
CONNECTIONS_PER_REPLICA = SETTINGS[("store", "pool_size")] + 6
#: Replicas at once during a rolling restart (maxSurge 1).
PEAK_REPLICAS = REPLICAS + 1
OPERATIONS = ROOT / "docs" / "operations.md"


def _seconds(text: Any) -> float:
    found = re.fullmatch(r"(\d+(?:\.\d+)?)s", str(text))
    assert found, text
    return float(found.group(1))


def _max_connections(argv: list[str]) -> int:
    joined = " ".join(argv)
    found = re.search(r"max_connections=(\d+)", joined)
    assert found, f"max_connections is not set: {joined}"
    return int(found.group(1))


def interpolate(text: str, variables: dict[str, str]) -> str:
    """Compose's ${NAME}, ${NAME:?message} and ${NAME:-default}; an unset required one fails."""

    def value(found: re.Match[str]) -> str:
        name, op, rest = found.group(1), found.group(2) or "", found.group(3) or ""
        if name in variables:
            return variables[name]
        assert op != ":?", f"{name} is required: {rest}"
        return rest

    return re.sub(r"\$\{(\w+)(?:(:\?|:-)([^}]*))?\}", value, text)


# -- Compose, profile fleet ------------------------------------------------------------


def test_the_fleet_profile_adds_postgresql_three_replicas_and_a_front() -> None:
    fleet, default = services("fleet"), services()
    assert set(fleet) - set(default) == {"postgres", "replica", "front"}
    for name in ("postgres", "replica", "front"):
        assert fleet[name]["profiles"] == ["fleet"]
    replica = fleet["replica"]
    assert replica["deploy"]["replicas"] == REPLICAS
    assert "ports" not in replica, "a scaled service cannot publish one host port: the front is the address"
    build = replica["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == ROOT / "Dockerfile"
    assert replica["image"] == default["mnemo"]["image"]
    assert replica["healthcheck"]["test"] == ["CMD", "mnemo-healthcheck", MEMORY_SERVICE]
    assert _seconds(replica["stop_grace_period"]) >= STOP_S + 20
    for dependency in ("postgres", "redis"):
        assert replica["depends_on"][dependency]["condition"] == "service_healthy"
    for name in replica["environment"]:
        assert name in SETTING_ENV, f"{name} is not a setting"


def test_every_replica_stores_in_the_postgresql_service() -> None:
    fleet = services("fleet")
    postgres, env = fleet["postgres"], fleet["replica"]["environment"]
    variable = re.fullmatch(r"\$\{(\w+):\?.*\}", postgres["environment"]["POSTGRES_PASSWORD"])
    assert variable, "the password must be required, not defaulted"
    url = urlsplit(interpolate(env["MNEMO_STORE_URL"], {variable.group(1): "0123abcd"}))
    assert url.scheme == "postgresql"
    assert (url.hostname, url.port) == ("postgres", 5432)
    assert url.username == postgres["environment"]["POSTGRES_USER"]
    assert url.password == "0123abcd"
    assert url.path == "/" + postgres["environment"]["POSTGRES_DB"]
    assert env["MNEMO_REDIS_URL"].startswith("redis://redis:6379")
    assert env["MNEMO_AUTH_BOOTSTRAP_KEY"] == services()["mnemo"]["environment"]["MNEMO_AUTH_BOOTSTRAP_KEY"]
    assert postgres["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    volume, _, path = postgres["volumes"][0].partition(":")
    assert path == "/var/lib/postgresql/data" and volume in compose()["volumes"]
    assert _max_connections(postgres["command"]) >= PEAK_REPLICAS * CONNECTIONS_PER_REPLICA


def test_the_front_is_one_grpc_address_for_every_replica() -> None:
    front = services("fleet")["front"]
    assert front["image"].startswith("envoyproxy/envoy:")
    assert front["depends_on"]["replica"]["condition"] == "service_healthy"
    (mount,) = front["volumes"]
    source, target, mode = mount.split(":")
    assert (DEPLOY / source).resolve() == DEPLOY / "envoy.yaml" and mode == "ro"
    assert shlex.join(front["command"]).startswith(f"envoy -c {target}")
    (published,) = front["ports"]
    host, host_port, container_port = published.rsplit(":", 2)
    assert host == "127.0.0.1"
    single = {int(p.split(":")[1]) for p in services()["mnemo"]["ports"]}
    assert int(host_port) not in single, "the front and the single server both run under --profile fleet"
    listener = envoy()["static_resources"]["listeners"][0]
    assert listener["address"]["socket_address"]["port_value"] == int(container_port)


def envoy() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "envoy.yaml").read_text())
    assert isinstance(data, dict)
    return data


def _manager(config: dict[str, Any]) -> dict[str, Any]:
    (listener,) = config["static_resources"]["listeners"]
    (chain,) = listener["filter_chains"]
    (manager,) = chain["filters"]
    assert manager["name"] == "envoy.filters.network.http_connection_manager"
    typed: dict[str, Any] = manager["typed_config"]
    return typed


def test_envoy_balances_calls_over_the_healthy_replicas() -> None:
    config = envoy()
    (cluster,) = config["static_resources"]["clusters"]
    assert cluster["type"] == "STRICT_DNS"  # one host per address the name resolves to
    (group,) = cluster["load_assignment"]["endpoints"]
    (endpoint,) = group["lb_endpoints"]
    address = endpoint["endpoint"]["address"]["socket_address"]
    assert (address["address"], address["port_value"]) == ("replica", GRPC_PORT)
    assert "replica" in services("fleet")
    upstream = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    options = cluster["typed_extension_protocol_options"][upstream]
    assert "http2_protocol_options" in options["explicit_http_config"]  # gRPC upstream
    (check,) = cluster["health_checks"]
    assert check["grpc_health_check"]["service_name"] == MEMORY_SERVICE and MEMORY_SERVICE in SERVICE_NAMES
    # A draining replica is out before it stops answering: drain_s covers the checks needed.
    drain_s = SETTINGS[("server", "shutdown_drain_s")]
    assert _seconds(check["interval"]) * check["unhealthy_threshold"] + _seconds(check["timeout"]) < drain_s
    outliers = cluster["outlier_detection"]
    assert outliers["enforcing_consecutive_5xx"] == 0  # every replica answers UNAVAILABLE while PG is down
    assert outliers["max_ejection_percent"] < 100


def test_envoy_adds_no_timeout_and_retries_only_what_never_ran() -> None:
    manager = _manager(envoy())
    assert manager["codec_type"] == "HTTP2"
    assert _seconds(manager["stream_idle_timeout"]) == 0  # watches stay open
    (route,) = manager["route_config"]["virtual_hosts"][0]["routes"]
    assert route["route"]["cluster"] == "mnemo"
    assert _seconds(route["route"]["timeout"]) == 0
    assert _seconds(route["route"]["max_stream_duration"]["grpc_timeout_header_max"]) == 0
    retry = route["route"]["retry_policy"]
    assert set(retry["retry_on"].split(",")) <= {"connect-failure", "refused-stream", "unavailable"}
    predicates = [p["name"] for p in retry["retry_host_predicate"]]
    assert predicates == ["envoy.retry_host_predicates.previous_hosts"]  # another replica


# -- Kubernetes, deploy/k8s/fleet ------------------------------------------------------


def fleet_docs() -> list[dict[str, Any]]:
    return kustomize(FLEET)


def deployment() -> dict[str, Any]:
    return find(fleet_docs(), "Deployment", "mnemo")


def container() -> dict[str, Any]:
    (found,) = deployment()["spec"]["template"]["spec"]["containers"]
    return found


def env_of(c: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in c["env"]}


def test_the_fleet_is_a_deployment_of_three_replicas_and_no_statefulset_of_mnemo() -> None:
    spec = deployment()["spec"]
    assert spec["replicas"] == REPLICAS
    assert spec["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": PEAK_REPLICAS - REPLICAS}
    kinds = {(d["kind"], d["metadata"]["name"]) for d in fleet_docs()}
    assert ("StatefulSet", "mnemo") not in kinds
    assert ("StatefulSet", "mnemo") in {(d["kind"], d["metadata"]["name"]) for d in kustomize(K8S)}
    assert not {("Deployment", "mnemo"), ("StatefulSet", "mnemo-postgres")} & {
        (d["kind"], d["metadata"]["name"]) for d in kustomize(K8S)
    }, "the single server must not change"
    assert kustomization(FLEET)["images"] == kustomization(K8S)["images"]
    volumes = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
    assert "emptyDir" in volumes["data"], "/data holds only derived index snapshots"


def test_replicas_probe_grpc_health_and_wait_for_the_drain() -> None:
    c, pod = container(), deployment()["spec"]["template"]["spec"]
    assert c["readinessProbe"]["grpc"] == {"port": GRPC_PORT, "service": MEMORY_SERVICE}
    assert c["livenessProbe"]["grpc"] == {"port": GRPC_PORT, "service": ""}
    startup = c["startupProbe"]
    assert startup["grpc"]["port"] == GRPC_PORT
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300  # an index rebuild from PG
    pre_stop = c["lifecycle"]["preStop"]["exec"]["command"]
    assert pod["terminationGracePeriodSeconds"] >= float(pre_stop[1]) + STOP_S + 20


def test_replicas_store_in_postgresql_from_a_secret() -> None:
    env = env_of(container())
    store = env["MNEMO_STORE_URL"]
    assert "value" not in store, "the URL carries the password: from a Secret, not the manifest"
    assert store["valueFrom"]["secretKeyRef"] == {"name": "mnemo-postgres", "key": "url"}
    for name, entry in env.items():
        assert name in SETTING_ENV, f"{name} is not a setting"
        assert "valueFrom" in entry or "value" in entry
    redis_host = urlsplit(env["MNEMO_REDIS_URL"]["value"]).hostname
    find(fleet_docs(), "Service", str(redis_host))
    assert env["MNEMO_AUTH_BOOTSTRAP_KEY_FILE"]["value"].startswith("/etc/mnemo/bootstrap/")


def test_the_reference_postgresql_matches_the_documented_secret() -> None:
    docs = fleet_docs()
    sts = find(docs, "StatefulSet", "mnemo-postgres")
    service = find(docs, "Service", sts["spec"]["serviceName"])
    pod = sts["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
    (pg,) = pod["spec"]["containers"]
    env = env_of(pg)
    password = env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert password == {"name": "mnemo-postgres", "key": "password"}
    assert _max_connections(pg["args"]) >= PEAK_REPLICAS * CONNECTIONS_PER_REPLICA
    # The command that creates the Secret (kustomization.yaml, docs) names this server.
    comment = (FLEET / "kustomization.yaml").read_text()
    found = re.search(r'url="(postgresql://[^"]+)"', comment)
    assert found, "the kustomization says how to create the Secret mnemo-postgres"
    url = urlsplit(found.group(1))
    assert (url.hostname, url.port) == (service["metadata"]["name"], service["spec"]["ports"][0]["port"])
    assert url.username == env["POSTGRES_USER"]["value"] and url.path == "/" + env["POSTGRES_DB"]["value"]
    assert "../postgres" in kustomization(FLEET)["resources"]  # a reference: drop it for your own server


def test_the_disruption_budget_keeps_two_of_three_serving() -> None:
    docs = fleet_docs()
    pdb = find(docs, "PodDisruptionBudget", "mnemo")
    labels = deployment()["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["minAvailable"] == REPLICAS - 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    for name in ("mnemo", "mnemo-headless"):
        service = find(docs, "Service", name)
        assert service["spec"]["selector"].items() <= labels.items()
        grpc = next(p for p in service["spec"]["ports"] if p["name"] == "grpc")
        assert grpc["port"] == GRPC_PORT and grpc["targetPort"] == "grpc"
    assert "publishNotReadyAddresses" not in find(docs, "Service", "mnemo-headless")["spec"]


def test_a_replica_runs_like_the_single_server_but_for_its_store() -> None:
    single = find(kustomize(K8S), "StatefulSet", "mnemo")
    (one,) = single["spec"]["template"]["spec"]["containers"]
    replica = container()
    for key in ("image", "ports", "resources", "securityContext", "startupProbe", "livenessProbe",
                "readinessProbe", "lifecycle", "volumeMounts"):  # fmt: skip
        assert replica[key] == one[key], key
    differs = {
        name
        for name in env_of(replica).keys() | env_of(one).keys()
        if env_of(replica).get(name) != env_of(one).get(name)
    }
    assert differs == {"MNEMO_STORE_URL"}
    pod, single_pod = deployment()["spec"]["template"]["spec"], single["spec"]["template"]["spec"]
    assert pod["securityContext"] == single_pod["securityContext"]
    redis = find(kustomize(K8S), "Deployment", "mnemo-redis")
    assert redis == find(fleet_docs(), "Deployment", "mnemo-redis")  # one file, both trees


# -- docs ------------------------------------------------------------------------------


def _section(text: str, heading: str) -> str:
    found = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert found, f"docs/operations.md has no section {heading!r}"
    return found.group(1)


def test_operations_says_how_to_scale_fail_over_back_up_and_upgrade_the_fleet() -> None:
    text = OPERATIONS.read_text()
    fleet = _section(text, "Running a fleet")
    for needed in (
        "--profile fleet",
        "deploy/k8s/fleet",
        "scale deployment mnemo",
        "--scale replica=",
        "PodDisruptionBudget",
        "max_connections",
    ):
        assert needed in fleet, needed
    for heading in ("Scaling", "Failing over", "Backing up and restoring", "Upgrading"):
        assert re.search(rf"^### {heading}$", fleet, re.MULTILINE), heading
    backup = fleet.split("### Backing up and restoring", 1)[1].split("### ", 1)[0]
    for needed in ("pg_dump", "pg_restore", "mnemo export", "mnemo import"):
        assert needed in backup, needed
    upgrade = fleet.split("### Upgrading", 1)[1].split("### ", 1)[0]
    assert "mnemo-server migrate" in upgrade and "rolling" in upgrade.lower()


def test_the_readme_commands_name_the_files_that_exist() -> None:
    text = (DEPLOY / "README.md").read_text()
    assert "kubectl -n mnemo apply -k deploy/k8s/fleet" in text
    assert "--profile fleet up -d --build front" in text
    for path in re.findall(r"`(deploy/[\w./-]+)`", text + OPERATIONS.read_text()):
        assert (ROOT / path).exists(), path
    header = (DEPLOY / "docker-compose.yml").read_text()
    assert "--profile fleet up -d --build front" in header
    assert Path(DEPLOY / "envoy.yaml").exists()
