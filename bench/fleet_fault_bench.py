"""What the fleet's faults cost the clients: three replicas on PostgreSQL
(fsync on) with a Redis, under one writer and one searcher per replica
(server/tests/fleet/fault_fleet.py, the fleet the fault tests use).

1. kill -9 of the leader: the survivors' call latency in the seconds after
   the kill against the seconds before it (the baseline, same run, same
   load), their failed calls, and how long the victim takes from its restart
   to serving again (model load plus catching up on the writes it missed).
2. PostgreSQL restarted (pg_ctl stop -m fast, a pause, start): how long each
   replica's writes keep failing after PostgreSQL is back, and the write
   latency after recovery against the baseline before the restart.

    .venv/bin/python bench/fleet_fault_bench.py --window 5 --outage 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from tests.fleet.fault_fleet import REPLICAS, FaultFleet, Load, eventually


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latency(load: Load, replicas: list[int], method: str, start: float, end: float) -> str:
    values = [
        s for r, name, at, s in list(load.latencies) if r in replicas and name == method and start <= at < end
    ]
    if not values:
        return f"{method:14s} no calls"
    return (
        f"{method:14s} {len(values):5d} calls  p50 {1e3 * statistics.median(values):7.1f} ms"
        f"  p99 {1e3 * percentile(values, 0.99):7.1f} ms"
    )


def kill_9(fleet: FaultFleet, window: float) -> None:
    victim = fleet.leader()
    survivors = [i for i in range(REPLICAS) if i != victim]
    load = Load(fleet, "bench-kill9", writers=1).start()
    try:
        eventually(lambda: all(load.acked_on(i) >= 20 for i in range(REPLICAS)), "warm")
        before = time.monotonic()
        time.sleep(window)
        fleet.proc(victim).kill()
        killed = time.monotonic()
        time.sleep(window)
        after = time.monotonic()
        missed = sum(1 for r, _u, _id, at in load.acked if r in survivors and at >= killed)
        fleet.start(victim)
        rejoined = time.monotonic()
        eventually(lambda: load.acked_on(victim, since=rejoined) >= 5, "the victim serves again")
    finally:
        load.stop()
    survivor_failures = [f for f in load.failures if f.replica in survivors]
    print(f"kill -9 of replica {victim} (the leader), survivors {survivors}, {window:.0f} s windows")
    for method in ("CreateMemory", "SearchMemories"):
        print("  before the kill (baseline) " + latency(load, survivors, method, before, killed))
        print("  after the kill             " + latency(load, survivors, method, killed, after))
    print(
        f"  failed calls on the survivors: {len(survivor_failures)}; on the victim: "
        f"{len(load.failures) - len(survivor_failures)}"
    )
    print(f"  victim: restart to serving {rejoined - after:.1f} s, catching up on {missed} writes it missed")


def pg_restart(fleet: FaultFleet, window: float, outage: float) -> None:
    load = Load(fleet, "bench-pg", writers=1, retry=True).start()
    try:
        eventually(lambda: all(load.acked_on(i) >= 20 for i in range(REPLICAS)), "warm")
        before = time.monotonic()
        time.sleep(window)
        down = time.monotonic()
        fleet.pg.stop_server()
        stopped = time.monotonic()
        time.sleep(outage)
        fleet.pg.start_server()
        up = time.monotonic()
        eventually(lambda: all(load.acked_on(i, since=up) >= 1 for i in range(REPLICAS)), "writes again")
        first = [
            min(at for r, _u, _id, at in load.acked if r == i and at >= up) - up for i in range(REPLICAS)
        ]
        recovered = time.monotonic()
        time.sleep(window)
        end = time.monotonic()
    finally:
        load.stop()
    codes = sorted({(f.code, f.reason) for f in load.failures})
    print(
        f"PostgreSQL restart: unreachable for {up - down:.1f} s"
        f" (pg_ctl stop {stopped - down:.1f} s, pause {outage:.0f} s, pg_ctl start -w)"
    )
    print(
        "  first acknowledged write after PostgreSQL was back, per replica: "
        + ", ".join(f"{s:.2f} s" for s in first)
    )
    print(f"  failed calls: {len(load.failures)}, {codes}")
    print("  before (baseline)  " + latency(load, list(range(REPLICAS)), "CreateMemory", before, down))
    print("  after recovery     " + latency(load, list(range(REPLICAS)), "CreateMemory", recovered, end))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--window", type=float, default=5.0, help="seconds measured before and after a fault")
    parser.add_argument("--outage", type=float, default=3.0, help="seconds PostgreSQL stays down")
    args = parser.parse_args()
    fleet = FaultFleet(Path(tempfile.mkdtemp(prefix="mnemo-fleet-bench-")), durable=True)
    try:
        kill_9(fleet, args.window)
        pg_restart(fleet, args.window, args.outage)
    finally:
        fleet.close()


if __name__ == "__main__":
    main()
