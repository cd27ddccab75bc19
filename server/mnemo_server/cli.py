"""The mnemo-server command: parse flags, load settings, run the App."""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import importlib.metadata
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from mnemo_server import fleet
from mnemo_server.config import ConfigError, Settings, load_settings, setting_names


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(level: str, as_json: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if as_json else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # FAISS logs each CPU-specific library it fails to find (AVX-512 ...) before
    # loading the generic one, with the exception; that is normal, not news.
    if level.lower() != "debug":
        logging.getLogger("faiss.loader").setLevel(logging.WARNING)


def package_version() -> str:
    """The installed mnemo-server distribution's version."""
    try:
        return importlib.metadata.version("mnemo-server")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        return "unknown"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mnemo-server",
        description="Mnemo: a long-term memory server for AI agents, over gRPC. "
        "Settings come from --config (TOML) < MNEMO_* environment < flags.",
    )
    p.add_argument("--version", action="version", version=f"mnemo-server {package_version()}")
    p.add_argument("--config", type=Path, help="a TOML settings file (env MNEMO_CONFIG)")
    p.add_argument("--store", dest="store.url", default=None, metavar="URL", help="the same as --store-url")
    for section, name, env, flag, default, doc in setting_names():
        kwargs: dict[str, Any] = {
            "dest": f"{section}.{name}",
            "default": None,
            "help": f"{doc} [{env}; default {default}]",
        }
        if isinstance(default, bool):
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["metavar"] = name.upper()
        p.add_argument(flag, **kwargs)
    return p


def settings_from_args(argv: list[str] | None = None) -> Settings:
    args = vars(parser().parse_args(argv))
    config = args.pop("config") or (
        Path(os.environ["MNEMO_CONFIG"]) if os.environ.get("MNEMO_CONFIG") else None
    )
    overrides = {k: v for k, v in args.items() if v is not None}
    return load_settings(config_file=config, overrides=overrides)


def _report_ready(loaded: asyncio.Future[None]) -> None:
    if not loaded.cancelled() and loaded.exception() is None:
        fleet.report("serving")


async def serve(settings: Settings) -> None:
    from mnemo_server.app import App

    app = App(settings)
    stop = asyncio.Event()
    hurry = asyncio.Event()  # a second signal: stop draining now
    received: list[signal.Signals] = []

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig)
        (hurry if stop.is_set() else stop).set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    await app.start()
    loader = asyncio.ensure_future(app.ready())
    loader.add_done_callback(_report_ready)
    stopper = asyncio.ensure_future(stop.wait())
    done, _ = await asyncio.wait({loader, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if loader in done and loader.exception() is not None:
        await app.stop(grace=0)
        raise SystemExit(f"mnemo-server: start-up failed: {loader.exception()}")
    await stopper
    fleet.report("draining")
    # SIGTERM (Kubernetes, docker stop) drains first; Ctrl-C at a terminal stops at once.
    if received[0] == signal.SIGTERM and settings.server.shutdown_drain_s > 0:
        await app.drain(settings.server.shutdown_drain_s, hurry)
    logging.getLogger("mnemo.app").info("stopping")
    await app.stop()


def migrate(argv: list[str]) -> None:
    """`mnemo-server migrate --store URL` (or MNEMO_STORE_URL, as the server
    reads it): applies the PostgreSQL schema migrations and exits (servers
    also apply them at start)."""
    p = argparse.ArgumentParser(
        prog="mnemo-server migrate", description="Bring a PostgreSQL store's schema up to this version."
    )
    from_env = os.environ.get("MNEMO_STORE_URL", "")
    p.add_argument(
        "--store",
        required=not from_env,
        default=from_env,
        metavar="URL",
        help="postgresql://user@host:port/db (default: MNEMO_STORE_URL)",
    )
    args = p.parse_args(argv)
    import psycopg

    from mnemo_server import errors
    from mnemo_server.store.pg_schema import migrate as apply

    try:
        with psycopg.connect(args.store, autocommit=True, connect_timeout=10) as conn:
            before, after = apply(conn)
    except (psycopg.Error, errors.MnemoError) as exc:
        print(f"mnemo-server migrate: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"schema version {before} -> {after}" if before != after else f"schema version {after}: up to date")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["migrate"]:
        migrate(argv[1:])
        return
    try:
        settings = settings_from_args(argv)
    except ConfigError as exc:
        print(f"mnemo-server: invalid setting: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.server.log_level, settings.server.log_json)
    # A crash in native code (FAISS, torch, SQLite, gRPC core) prints every
    # thread's Python stack to stderr instead of dying without a word (a
    # SIGSEGV once seen on SIGTERM left only "stopping" in the log).
    faulthandler.enable()
    # gRPC core's own log lines (chttp2 transport GOAWAYs of ordinary client
    # disconnects and the like) only at ERROR unless the operator asks for more
    # (GRPC_VERBOSITY=info, GRPC_TRACE=...); read when grpc is first imported.
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    # No model or data set may be fetched at run time.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    # OpenMP threads that spin while waiting steal the cores gRPC, FAISS and
    # the other model threads need; measured 10x slower embeddings under load.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # NumPy's OpenBLAS threads stall small scans on busy cores (a 10k-row
    # scan took 9-32 ms instead of 1.2 ms); large batches use FAISS threads.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if settings.server.workers > 1 and fleet.worker_index() is None:
        # Several processes on one address: a supervisor, not a server (fleet/supervisor.py).
        from mnemo_server.fleet.supervisor import supervise

        raise SystemExit(supervise(settings, list(sys.argv[1:] if argv is None else argv)))
    asyncio.run(serve(settings))
