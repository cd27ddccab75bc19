"""The supervisor's HTTP port (`metrics.address` of `--workers N`).

- `/metrics`: every worker's own metrics (each child serves them on a private
  loopback port), each sample labelled `worker="i"`, families merged, plus
  the fleet's: `mnemo_fleet_workers` (configured), `mnemo_fleet_worker_up`
  (1 while the child runs and answered the scrape) and
  `mnemo_fleet_worker_restarts_total` per worker.
- `/healthz`: 200 when every worker runs and reported that it serves (not
  starting, draining or restarting), else 503; the body says so per worker.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mnemo_server.fleet.supervisor import Supervisor, Worker

SCRAPE_TIMEOUT_S = 2.0


def labelled(text: str, worker: int) -> list[tuple[str, list[str]]]:
    """The families of one exposition text: (name, its HELP/TYPE and sample
    lines), each sample with `worker` added to its labels."""
    families: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(maxsplit=3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                if not families or families[-1][0] != parts[2]:
                    families.append((parts[2], []))
                families[-1][1].append(line)
            continue
        name_end = min((i for i in (line.find("{"), line.find(" ")) if i >= 0), default=len(line))
        name, rest = line[:name_end], line[name_end:]
        if rest.startswith("{}"):
            rest = rest[2:]
        if rest.startswith("{"):
            sample = f'{name}{{worker="{worker}",{rest[1:]}'
        else:
            sample = f'{name}{{worker="{worker}"}}{rest}'
        if not families:
            families.append((name, []))
        families[-1][1].append(sample)
    return families


def merge(texts: dict[int, str]) -> str:
    """One exposition of several workers' texts: each family's HELP and TYPE once."""
    order: list[str] = []
    heads: dict[str, list[str]] = {}
    samples: dict[str, list[str]] = {}
    for worker, text in sorted(texts.items()):
        for name, lines in labelled(text, worker):
            if name not in heads:
                order.append(name)
                heads[name] = [line for line in lines if line.startswith("#")]
                samples[name] = []
            samples[name].extend(line for line in lines if not line.startswith("#"))
    out = []
    for name in order:
        out.extend(heads[name])
        out.extend(samples[name])
    return "\n".join(out) + "\n"


def scrape(worker: Worker) -> str | None:
    if not worker.running or not worker.metrics_port:
        return None
    try:
        url = f"http://127.0.0.1:{worker.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT_S) as response:
            return str(response.read().decode())
    except OSError:
        return None


class FleetEndpoint:
    """The supervisor's /metrics and /healthz, in a thread of its own."""

    def __init__(self, supervisor: Supervisor, address: str) -> None:
        self.supervisor = supervisor
        host, _, port = address.rpartition(":")
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, kind, body = endpoint.answer(self.path.split("?")[0])
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer((host.strip("[]"), int(port)), Handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="mnemo-fleet-http", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def answer(self, path: str) -> tuple[int, str, bytes]:
        workers = self.supervisor.workers
        if path == "/healthz":
            states = [
                {
                    "worker": w.index,
                    "pid": w.process.pid if w.process is not None and w.running else None,
                    "running": w.running,
                    "state": w.state,
                    "restarts": w.restarts,
                    "crash_loop": w.crash_looping,
                }
                for w in workers
            ]
            healthy = all(w.state == "serving" for w in workers) and self.supervisor.stopping is None
            body = {"status": "SERVING" if healthy else "NOT_SERVING", "workers": states}
            return (200 if healthy else 503), "application/json", json.dumps(body).encode()
        if path == "/metrics":
            texts = {w.index: scrape(w) for w in workers}
            up = [(w, texts[w.index]) for w in workers]
            fleet = [
                "# HELP mnemo_fleet_workers Worker processes configured (--workers).",
                "# TYPE mnemo_fleet_workers gauge",
                f"mnemo_fleet_workers {len(workers)}",
                "# HELP mnemo_fleet_worker_up 1 while the worker runs and answered this scrape.",
                "# TYPE mnemo_fleet_worker_up gauge",
                *(f'mnemo_fleet_worker_up{{worker="{w.index}"}} {int(t is not None)}' for w, t in up),
                "# HELP mnemo_fleet_worker_restarts_total Times the supervisor restarted the worker.",
                "# TYPE mnemo_fleet_worker_restarts_total counter",
                *(f'mnemo_fleet_worker_restarts_total{{worker="{w.index}"}} {w.restarts}' for w in workers),
            ]
            text = "\n".join(fleet) + "\n" + merge({i: t for i, t in texts.items() if t is not None})
            return 200, "text/plain; version=0.0.4; charset=utf-8", text.encode()
        return 404, "text/plain", b"not found\n"
