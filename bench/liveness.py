"""Scenario 9: `GET /health` beside a login storm, auth alone in its process.

In Kubernetes the liveness probe asks each process for `/health`; a process
that does not answer in time is restarted. This measures what a probe sees
while logins at production cost (bcrypt 12) saturate auth: twice `max_workers`
clients log in back to back, so every worker is busy and as many logins wait
for one. `/health` is probed open loop (latency from each request's scheduled
send time), alone and under the storm, calm and storm runs interleaved; the
logins completed per second are the storm's throughput. With a baseline, that
older commit's auth is measured the same way first, on the same database, so
"before" and "after" are minutes apart on the same machine; a full run also
measures this checkout with more hashes at once (BCRYPT_CONCURRENCY).
"""
import re
import shutil
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests

from bench import env

HEALTH_STREAM = {"name": "health", "mix": [{"kind": "health", "weight": 1}]}
PASSWORD = "bench liveness password"


def settings(size):
    """bcrypt at the production cost; max_workers as deploy/base/config.yaml
    sets it (10) in a full run, smaller for --quick's few clients."""
    return {"BCRYPT_ROUNDS": "12", "MAX_WORKERS": str(size["liveness_max_workers"])}


def clients(size):
    # Twice the workers: every worker busy, and as many logins waiting for one.
    return 2 * size["liveness_max_workers"]


def _register(base_url):
    name = "lv" + uuid.uuid4().hex[:12]
    answer = requests.post(base_url + "/auth/register", timeout=120, json={
        "email": name + "@example.com", "username": name, "password": PASSWORD})
    answer.raise_for_status()
    return name


def _storm(base_url, logins, stop, tally):
    """One client per login name, each logging in back to back until stop is set."""
    def client(login):
        session = requests.Session()
        while not stop.is_set():
            try:
                status = session.post(base_url + "/auth/login", json={"login": login, "password": PASSWORD},
                                      timeout=120).status_code
            except requests.RequestException as exc:
                status = type(exc).__name__
            with tally["lock"]:
                tally["statuses"][status] = tally["statuses"].get(status, 0) + 1
                if status == 200:
                    tally["done_at"].append(time.monotonic())
    threads = [threading.Thread(target=client, args=(login,), daemon=True) for login in logins]
    for thread in threads:
        thread.start()
    return threads


def _worker_pool(base_url):
    """auth's worker pool from /metrics (which no worker serves): {in_use, waiting, size}."""
    text = requests.get(base_url + "/metrics", timeout=30).text
    found = {}
    for key in ("in_use", "waiting", "size"):
        match = re.search(rf'^lifytp_worker_pool_{key}\{{service="auth"\}} ([0-9.e+]+)$', text, re.MULTILINE)
        found[key] = int(float(match.group(1))) if match else None
    return found


def _saturated(base_url, timeout=30):
    """Wait until every worker is busy and logins wait for one; the pool then."""
    deadline = time.monotonic() + timeout
    while True:
        pool = _worker_pool(base_url)
        if (pool["in_use"] is not None and pool["in_use"] >= pool["size"] and pool["waiting"]) \
                or time.monotonic() > deadline:
            return pool
        time.sleep(0.2)


def _latency(streams):
    """Medians over runs of each run's figures; requests and errors summed."""
    def median(key):
        values = [stream["latency"][key] for stream in streams if stream["latency"][key] is not None]
        return round(statistics.median(values), 2) if values else None
    return {"requests": sum(stream["requests"] for stream in streams),
            "errors": sum(stream["errors"] for stream in streams),
            "p50_ms": median("p50_ms"), "p99_ms": median("p99_ms"), "max_ms": median("max_ms"),
            "runs_p99_ms": [stream["latency"]["p99_ms"] for stream in streams]}


def measure(label, root, quick, size, log_dir, openloop, log, **extra):
    """One system (the checkout at `root`, with `extra` settings): /health calm and under the storm."""
    system = env.System("split", quick, log_dir, root=root, services=("auth",), **settings(size), **extra)
    try:
        base_url = system.routes["auth"]
        pid = system.pids()["auth"]
        with ThreadPoolExecutor(4) as pool:  # each registration is a cost-12 hash
            logins = list(pool.map(lambda _: _register(base_url), range(clients(size))))
        routes = {"/health": base_url}
        stream = dict(HEALTH_STREAM, rate=size["liveness_health_rate"])
        duration = size["liveness_duration_s"]
        openloop(routes, {}, [stream], 1)  # warm-up
        calm, under, runs = [], [], []
        for _ in range(size["repeats"]):
            calm.append(openloop(routes, {}, [stream], duration)["streams"]["health"])
            stop, tally = threading.Event(), {"lock": threading.Lock(), "statuses": {}, "done_at": []}
            threads = _storm(base_url, logins, stop, tally)
            try:
                pool = _saturated(base_url)
                cpu_before, started = env.cpu_seconds(pid), time.monotonic()
                # Long enough that /health, queued behind the logins, still answers within it.
                under.append(openloop(routes, {}, [stream], duration, timeout_ms=60000)["streams"]["health"])
                ended = time.monotonic()
                cpu_used = env.cpu_seconds(pid) - cpu_before
                pool_after = _worker_pool(base_url)
            finally:
                stop.set()
                for thread in threads:
                    thread.join(150)
            logins_done = sum(1 for at in tally["done_at"] if started <= at <= ended)
            runs.append({"logins_per_s": round(logins_done / (ended - started), 2),
                         "process_cpu_fraction": round(cpu_used / (ended - started), 2),
                         "pool_at_start": pool, "pool_at_end": pool_after,
                         "login_statuses": {str(key): value for key, value in tally["statuses"].items()}})
            log(f"  {label}: /health under storm p99 {under[-1]['latency']['p99_ms']} ms, "
                f"logins {runs[-1]['logins_per_s']}/s, pool {pool}")
            time.sleep(2)  # the clients have stopped; auth settles before the next calm run
        return {"calm": _latency(calm), "under_storm": _latency(under),
                "logins_per_s": round(statistics.median(run["logins_per_s"] for run in runs), 2),
                "process_cpu_fraction": round(statistics.median(run["process_cpu_fraction"] for run in runs), 2),
                "runs": runs}
    finally:
        system.stop()


def health_under_login_storm(quick, size, log_dir, openloop, baseline=None, log=print):
    """The scenario: the baseline commit's auth (if given), then this checkout's."""
    systems, commit = {}, None
    if baseline:
        root, commit = env.export_commit(baseline)
        try:
            systems["before"] = measure("before", root, quick, size, log_dir, openloop, log)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    systems["after"] = measure("after", env.ROOT, quick, size, log_dir, openloop, log)
    # The same code hashing on more threads at once (10: one per worker, as
    # with no bound): what the bound costs in logins per second and buys in
    # /health latency on this machine.
    for concurrency in size["liveness_other_concurrency"]:
        label = f"after, BCRYPT_CONCURRENCY={concurrency}"
        systems[label] = measure(label, env.ROOT, quick, size, log_dir, openloop, log,
                                 BCRYPT_CONCURRENCY=str(concurrency))
    return {"baseline": commit, "clients": clients(size), "health_rate": size["liveness_health_rate"],
            "duration_s": size["liveness_duration_s"], "repeats": size["repeats"], "settings": settings(size),
            "systems": systems}
