"""LifyTP benchmarks: `python -m bench` (full) or `python -m bench --quick`;
`python -m bench --render [DIR]` writes RESULTS.md again from results.json.

Seeds (or reuses) the benchmark database, starts the system in its two shapes
on private ports, runs the scenarios and writes RESULTS.md and results.json
(bench/ for a full run, bench/.state/quick/ for --quick unless --out says
otherwise). Scenario 7 (range queries) seeds a database of its own and, with
`--baseline REF`, measures that older commit's system on the same data first;
scenario 9 (/health beside a login storm) does the same with
`--liveness-baseline REF`.
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from bench import env, imports, liveness, report, revocation, search, seed

JS_DIR = os.path.join(env.ROOT, "bench", "js")
PY = sys.executable

FULL = {
    "repeats": 3,
    "load_users": 2000,
    "mix_rates": [10, 20, 30, 40, 50, 60, 70, 85, 100, 120],
    "mix_duration_s": 8,
    "warmup_s": 4,
    "saturated_steps": 2,
    "feed_requests": 60, "feed_duration_s": 10,
    "calm_rate": 40, "storm_login_rates": [3, 8], "storm_duration_s": 12,
    "sockets": 1000, "group_size": 10, "message_rate": 20, "messages": 200,
    "rpc_calls": 1500,
    "profile_s": 10,
    "ics_uploaders": 4, "ics_health_rate": 50, "ics_duration_s": 20, "ics_cost_repeats": 3,
    "liveness_max_workers": 10, "liveness_health_rate": 20, "liveness_duration_s": 20,
    "liveness_other_concurrency": [2, 10],
}
QUICK = {
    "repeats": 1,
    "load_users": 100,
    "mix_rates": [10, 30],
    "mix_duration_s": 2,
    "warmup_s": 1,
    "saturated_steps": 1,
    "feed_requests": 10, "feed_duration_s": 2,
    "calm_rate": 20, "storm_login_rates": [3], "storm_duration_s": 2,
    "sockets": 20, "group_size": 5, "message_rate": 10, "messages": 10,
    "rpc_calls": 100,
    "profile_s": 0,
    "ics_uploaders": 2, "ics_health_rate": 20, "ics_duration_s": 3, "ics_cost_repeats": 1,
    "liveness_max_workers": 2, "liveness_health_rate": 10, "liveness_duration_s": 2,
    "liveness_other_concurrency": [],
}
SCENARIOS = ("rpc", "mix", "realtime", "storm", "feed", "shapes", "search", "ics", "liveness", "revocation")
# Scenarios that read the seeded population (search seeds a database of its
# own; ics needs only the tables).
POPULATED = {"mix", "realtime", "storm", "feed", "shapes"}


def log(*args):
    print(time.strftime("%H:%M:%S"), *args, file=sys.stderr, flush=True)


def median(values):
    values = [value for value in values if value is not None]
    return round(statistics.median(values), 2) if values else None


def percentile(values, q):
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, min(len(ordered) - 1, int(q * len(ordered) + 0.999999) - 1))], 2)


# Tools ----------------------------------------------------------------------------

def ensure_node_modules():
    if not os.path.isdir(os.path.join(JS_DIR, "node_modules", "socket.io-client")):
        log("installing bench/js dependencies (npm ci)")
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=JS_DIR, check=True, timeout=300)


def node(script, config, timeout):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(config, handle)
    try:
        done = subprocess.run(["node", os.path.join(JS_DIR, script), handle.name], capture_output=True,
                              text=True, timeout=timeout)
    finally:
        os.unlink(handle.name)
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(f"{script} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def tokens_for(users):
    from services.shared.tokens import DEFAULT_MAX_AGE_SECONDS, signer_from_file

    private, _ = env.keys()
    # As long-lived as any verifier accepts: a run takes well under an hour.
    signer = signer_from_file(private, DEFAULT_MAX_AGE_SECONDS)
    return [dict(user, token=signer.sign(user["id"])) for user in users]


def openloop(routes, data, streams, duration, timeout_ms=10000):
    config = {"routes": routes, "duration_s": duration, "timeout_ms": timeout_ms, "streams": streams, "data": data}
    return node("openloop.js", config, timeout=duration + timeout_ms / 1000 + 60)


def profile(pids, seconds, out_dir, label):
    """py-spy on each process for `seconds` (in the background); returns the
    Popen handles and the paths of their collapsed-stack files."""
    spy = shutil.which("py-spy") or os.path.join(os.path.dirname(PY), "py-spy")
    if not seconds or not os.path.exists(spy):
        return []
    started = []
    for name, pid in pids.items():
        path = os.path.join(out_dir, f"{label}-{name}.txt")
        started.append((subprocess.Popen(
            [spy, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "100", "--format", "raw",
             "--output", path, "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), name, path))
    return started


def collect_profiles(started):
    found = {}
    for process, name, path in started:
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if os.path.exists(path):
            found[name] = report.summarize_profile(path)
    return found


SHARED_SERVERS = {"postgres": "postgres", "beam.smp": "rabbitmq", "redis-server": "redis"}


def cpu_snapshot(pids):
    """CPU seconds used so far by each of our processes and, summed, by the
    shared servers (PostgreSQL, RabbitMQ, Redis: other users' work counts too)."""
    found = {name: env.cpu_seconds(pid) for name, pid in pids.items()}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as handle:
                comm = handle.read().strip()
        except OSError:
            continue
        if comm in SHARED_SERVERS:
            found[(SHARED_SERVERS[comm], entry)] = env.cpu_seconds(entry)
    found["_total"] = _total_cpu_seconds()
    return found


def _total_cpu_seconds():
    with open("/proc/stat") as handle:
        fields = [int(value) for value in handle.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / env.CLOCK_TICKS


def cpu_per_request(before, after, requests):
    """CPU milliseconds per completed request, by process group, and the
    machine's busy CPU over the same time."""
    if not requests:
        return {}
    used = {}
    for key in after.keys() & before.keys():  # a process that came or went is left out
        name = key[0] if isinstance(key, tuple) else key
        used[name] = used.get(name, 0.0) + after[key] - before[key]
    return {name: round(1000 * value / requests, 2) for name, value in sorted(used.items())}


# Scenarios ---------------------------------------------------------------------------

MIX = [{"kind": "feed", "weight": 60}, {"kind": "user_posts", "weight": 30}, {"kind": "new_post", "weight": 10}]


def mixed_workload(system, data, size, profile_dir=None):
    """Scenario 1 (and 6): open-loop mix at increasing rates until saturated."""
    routes = system.prefix_routes()
    openloop(routes, data, [{"name": "warmup", "rate": size["mix_rates"][0], "mix": MIX}], size["warmup_s"])
    steps = []
    saturated = 0
    for rate in size["mix_rates"]:
        before = cpu_snapshot(system.pids())
        runs = [openloop(routes, data, [{"name": "mix", "rate": rate, "mix": MIX}], size["mix_duration_s"])
                for _ in range(size["repeats"])]
        after = cpu_snapshot(system.pids())
        streams = [run["streams"]["mix"] for run in runs if "mix" in run.get("streams", {})]
        generator_cpu_s = sum(run["generator_cpu_fraction"] * run["wall_s"] for run in runs)
        step = {
            "rate": rate,
            "throughput": median([s["throughput"] for s in streams]),
            "p50_ms": median([s["latency"]["p50_ms"] for s in streams]),
            "p99_ms": median([s["latency"]["p99_ms"] for s in streams]),
            "errors": median([s["errors"] for s in streams]),
            "requests": median([s["requests"] for s in streams]),
            "by_kind_p99_ms": {kind: median([s["by_kind"].get(kind, {}).get("p99_ms") for s in streams])
                               for kind in ("feed", "user_posts", "new_post")},
            "generator_cpu": median([run["generator_cpu_fraction"] for run in runs]),
            "send_lag_p99_ms": median([s["send_lag_p99_ms"] for s in streams]),
            "cpu_ms_per_request": dict(cpu_per_request(before, after, sum(s["ok"] for s in streams)),
                                       generator=round(1000 * generator_cpu_s / max(1, sum(s["ok"] for s in streams)),
                                                       2)),
            "runs": [{"throughput": s["throughput"], "p50_ms": s["latency"]["p50_ms"],
                      "p99_ms": s["latency"]["p99_ms"], "errors": s["errors"]} for s in streams],
        }
        step["held"] = held(step)
        steps.append(step)
        log(f"  {system.shape} rate {rate}: thr {step['throughput']} p50 {step['p50_ms']} p99 {step['p99_ms']} "
            f"errors {step['errors']} gen cpu {step['generator_cpu']}")
        if not step["held"] or (step["p99_ms"] or 0) > 1000:
            saturated += 1
            if saturated >= size["saturated_steps"]:
                break
    result = {"steps": steps, "max_held_rate": max([s["rate"] for s in steps if s["held"]], default=None)}
    if profile_dir and size["profile_s"]:
        # One more run above the held rate, with py-spy on every process.
        rate = next((s["rate"] for s in steps if not s["held"]), steps[-1]["rate"])
        started = profile(system.pids(), size["profile_s"], profile_dir, f"mix-{system.shape}")
        openloop(routes, data, [{"name": "mix", "rate": rate, "mix": MIX}], size["profile_s"])
        result["profile"] = {"rate": rate, "processes": collect_profiles(started)}
    return result


def held(step):
    return (step["p99_ms"] is not None and step["p99_ms"] < 200 and (step["errors"] or 0) <= 0.005 * step["requests"]
            and step["throughput"] >= 0.95 * step["rate"])


def feed_scaling(system, readers, size):
    """Scenario 5: one request at a time (closed loop: service time, no
    queueing), up to feed_requests or feed_duration_s per run."""
    import requests

    url = system.routes["events"] + "/feed?limit=20"
    result = []
    for reader in readers:
        session = requests.Session()
        session.headers["Authorization"] = "Bearer " + reader["token"]
        for _ in range(3):
            session.get(url, timeout=60)
        runs, errors = [], 0
        for _ in range(size["repeats"]):
            latencies = []
            deadline = time.monotonic() + size["feed_duration_s"]
            while len(latencies) < size["feed_requests"] and time.monotonic() < deadline:
                started = time.perf_counter()
                answer = session.get(url, timeout=60)
                if answer.status_code == 200:
                    latencies.append((time.perf_counter() - started) * 1000)
                else:
                    errors += 1
            runs.append(latencies)
        entry = {"following": reader["following"], "requests": sum(len(run) for run in runs), "errors": errors,
                 "p50_ms": median([percentile(run, 0.5) for run in runs]),
                 "p99_ms": median([percentile(run, 0.99) for run in runs])}
        result.append(entry)
        log(f"  feed following {reader['following']}: p50 {entry['p50_ms']} p99 {entry['p99_ms']}")
    return result


def login_storm(system, data, event_id, size, profile_dir=None):
    """Scenario 4 at each storm level: calm and storm runs interleaved."""
    routes = system.prefix_routes()
    calm_stream = {"name": "get_event", "rate": size["calm_rate"], "event_id": event_id,
                   "mix": [{"kind": "get_event", "weight": 1}]}
    openloop(routes, data, [calm_stream], 1)
    levels = []
    for login_rate in size["storm_login_rates"]:
        storm_stream = {"name": "login", "rate": login_rate, "mix": [{"kind": "login", "weight": 1}]}
        calm, storm = [], []
        for _ in range(size["repeats"]):
            calm.append(openloop(routes, data, [calm_stream], size["storm_duration_s"])["streams"])
            storm.append(openloop(routes, data, [calm_stream, storm_stream], size["storm_duration_s"],
                                  timeout_ms=30000)["streams"])
            time.sleep(2)  # the logins still queued in auth finish
        level = {
            "get_event_rate": size["calm_rate"], "login_rate": login_rate,
            "calm_p50_ms": median([run["get_event"]["latency"]["p50_ms"] for run in calm]),
            "calm_p99_ms": median([run["get_event"]["latency"]["p99_ms"] for run in calm]),
            "storm_p50_ms": median([run["get_event"]["latency"]["p50_ms"] for run in storm]),
            "storm_p99_ms": median([run["get_event"]["latency"]["p99_ms"] for run in storm]),
            "storm_get_event_errors": sum(run["get_event"]["errors"] for run in storm),
            "login_p50_ms": median([run["login"]["latency"]["p50_ms"] for run in storm]),
            "login_p99_ms": median([run["login"]["latency"]["p99_ms"] for run in storm]),
            "login_throughput": median([run["login"]["throughput"] for run in storm]),
            "login_statuses": [run["login"]["statuses"] for run in storm],
        }
        if level["calm_p99_ms"] and level["storm_p99_ms"]:
            level["ratio"] = round(level["storm_p99_ms"] / level["calm_p99_ms"], 2)
        levels.append(level)
        log(f"  storm {login_rate}/s: calm p99 {level['calm_p99_ms']} storm p99 {level['storm_p99_ms']}")
    result = dict(levels[0], levels=levels)
    if profile_dir and size["profile_s"]:
        storm_stream = {"name": "login", "rate": size["storm_login_rates"][-1],
                        "mix": [{"kind": "login", "weight": 1}]}
        started = profile(system.pids(), size["profile_s"], profile_dir, "storm")
        openloop(routes, data, [calm_stream, storm_stream], size["profile_s"], timeout_ms=30000)
        result["profile"] = collect_profiles(started)
    return result


def realtime_delivery(system, users, size):
    import requests

    messages_url = system.routes["messages"]
    group = size["group_size"]
    conversations = []
    for start in range(0, len(users) - group + 1, group):
        members = users[start:start + group]
        answer = requests.post(messages_url + "/messages/conversations", timeout=30,
                               headers={"Authorization": "Bearer " + members[0]["token"]},
                               json={"member_ids": [m["id"] for m in members[1:]], "title": "bench"})
        answer.raise_for_status()
        conversations.append({"id": answer.json()["id"], "members": [m["id"] for m in members],
                              "sender": members[0]["id"]})
    runs = []
    before = cpu_snapshot(system.pids())
    for _ in range(size["repeats"]):
        runs.append(node("sockets.js", {
            "realtime_urls": system.realtime_urls, "messages_url": messages_url,
            "users": [{"id": u["id"], "token": u["token"]} for u in users], "conversations": conversations,
            "rate": size["message_rate"], "count": size["messages"], "settle_s": 3, "connect_timeout_s": 60,
        }, timeout=300))
    after = cpu_snapshot(system.pids())
    ok = [run for run in runs if "from_answer" in run]
    # Per message sent (each delivered to every other member), for sizing CPU
    # requests (docs/DEPLOY.md); the sockets' connects are in it too.
    cpu = cpu_per_request(before, after, size["messages"] * len(runs))
    if cpu:
        cpu["machine"] = cpu.pop("_total")
    result = {
        "sockets": len(users), "replicas": len(system.realtime_urls), "conversations": len(conversations),
        "members_per_conversation": group, "message_rate": size["message_rate"], "messages_per_run": size["messages"],
        "p50_ms": median([run["from_answer"]["p50_ms"] for run in ok]),
        "p99_ms": median([run["from_answer"]["p99_ms"] for run in ok]),
        "from_send_p50_ms": median([run["from_send"]["p50_ms"] for run in ok]),
        "from_send_p99_ms": median([run["from_send"]["p99_ms"] for run in ok]),
        "post_p50_ms": median([run["post"]["p50_ms"] for run in ok]),
        "delivered": sum(run["delivered"] for run in ok), "expected": sum(run["expected_deliveries"] for run in ok),
        "duplicates": sum(run["duplicates"] for run in ok),
        "connect_s": median([run.get("connect_s") for run in ok]),
        "errors": [run["error"] for run in runs if "error" in run],
        "cpu_ms_per_message": cpu,
        "runs": ok,
    }
    log(f"  realtime: p50 {result['p50_ms']} p99 {result['p99_ms']} delivered {result['delivered']}"
        f"/{result['expected']}")
    return result


def rpc_cost(quick, size, log_dir, profile_dir=None):
    from bench.rpc import RAW_QUEUE  # noqa: F401  (the module must import)

    variants = {"default": {}} if quick else {
        "default": {},
        "prefetch1": {"MAX_WORKERS": "1"},
        "no_confirms": {"BENCH_RPC_CONFIRMS": "0"},
        "no_reply_confirms": {"BENCH_RPC_REPLY_CONFIRMS": "0"},
        "no_confirms_transient": {"BENCH_RPC_CONFIRMS": "0", "BENCH_RPC_TRANSIENT": "1"},
    }
    processes = []
    pids = {}
    count = size["rpc_calls"]
    try:
        uri = env.reset_vhost(env.vhost_name(quick, "_rpc"))
        raw_server = subprocess.Popen([PY, "-m", "bench.rpc", "raw-server", uri], cwd=env.ROOT,
                                      stdout=subprocess.PIPE, stderr=open(os.path.join(log_dir, "raw.log"), "w"),
                                      text=True)
        processes.append(raw_server)
        safe_server = subprocess.Popen([PY, "-m", "bench.rpc", "raw-server", uri, "safe"], cwd=env.ROOT,
                                       stdout=subprocess.PIPE, text=True,
                                       stderr=open(os.path.join(log_dir, "raw-safe.log"), "w"))
        processes.append(safe_server)
        for name, extra in variants.items():
            for service in ("EchoService", "CallerService"):
                processes.append(subprocess.Popen(
                    [os.path.join(env.ROOT, ".venv", "bin", "nameko"), "run", "--config", "bench/rpc_config.yaml",
                     "bench.rpc_services:" + service], cwd=env.ROOT,
                    env=dict(os.environ, AMQP_URI=uri, BENCH_RPC_VARIANT=name, **extra),
                    stdout=open(os.path.join(log_dir, f"rpc-{name}-{service}.log"), "w"), stderr=subprocess.STDOUT))
                pids[f"{name}-{service}"] = processes[-1].pid
        raw_server.stdout.readline()
        safe_server.stdout.readline()

        def client(*args):
            done = subprocess.run([PY, "-W", "ignore", "-m", "bench.rpc", *args], cwd=env.ROOT, capture_output=True,
                                  text=True, timeout=600)
            if done.returncode:
                raise RuntimeError(done.stderr[-2000:])
            return json.loads(done.stdout.strip().splitlines()[-1])

        cases_args = {
            "raw_kombu": ("raw-client", uri, str(count)),
            "raw_kombu_confirms_persistent": ("raw-client", uri, str(count), "safe"),
            "nameko_standalone_proxy": ("nameko-client", uri, str(count)),
            "nameko_service_to_service": ("service-loop", uri, str(count), "1"),
            "nameko_s2s_no_confirms": ("service-loop", uri, str(count), "1", "no_confirms"),
            "nameko_s2s_no_reply_confirms": ("service-loop", uri, str(count), "1", "no_reply_confirms"),
            "nameko_s2s_no_confirms_transient": ("service-loop", uri, str(count), "1", "no_confirms_transient"),
            "nameko_s2s_8_callers_prefetch10": ("service-loop", uri, str(count), "8"),
            "nameko_s2s_8_callers_prefetch1": ("service-loop", uri, str(count), "8", "prefetch1"),
            "raw_kombu_again": ("raw-client", uri, str(count)),
        }
        cases = {name: (lambda args=args: client(*args)) for name, args in cases_args.items()}
        if quick:
            cases = {name: case for name, case in cases.items()
                     if "confirms" not in name and "prefetch1" not in name}
        # Warm-up: every case once, small, unrecorded (services may still be starting).
        for name in cases:
            if name != "raw_kombu_again":
                client(*cases_args[name][:2], "20", *cases_args[name][3:])
        runs = {name: [] for name in cases}
        for _ in range(size["repeats"]):
            # Interleaved, so that a change in the machine's load hits every case alike.
            for name, case in cases.items():
                runs[name].append(case())
        result = {}
        for name, results in runs.items():
            result[name] = {
                "calls": count,
                "calls_per_s": median([len(r["latencies_ms"]) / r["seconds"] for r in results]),
                "p50_ms": median([percentile(r["latencies_ms"], 0.5) for r in results]),
                "p99_ms": median([percentile(r["latencies_ms"], 0.99) for r in results]),
                "runs_calls_per_s": [round(len(r["latencies_ms"]) / r["seconds"], 1) for r in results],
            }
            log(f"  rpc {name}: {result[name]['calls_per_s']} calls/s p50 {result[name]['p50_ms']}")
        raw = median([result["raw_kombu"]["calls_per_s"], result["raw_kombu_again"]["calls_per_s"]])
        result["ratios_to_raw"] = {name: round(value["calls_per_s"] / raw, 3) for name, value in result.items()
                                   if name.startswith("nameko") or name == "raw_kombu_confirms_persistent"}
        result["raw_calls_per_s"] = raw
        if profile_dir and size["profile_s"]:
            started = profile({"echo": pids["default-EchoService"], "caller": pids["default-CallerService"],
                               "raw-server": raw_server.pid}, size["profile_s"], profile_dir, "rpc")
            deadline = time.monotonic() + size["profile_s"]
            while time.monotonic() < deadline:
                cases["nameko_service_to_service"]()
                cases["raw_kombu"]()
            result["profile"] = collect_profiles(started)
        return result
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        env.delete_vhost(env.vhost_name(quick, "_rpc"))


# The run ------------------------------------------------------------------------------

def machine():
    def run(*args):
        try:
            return subprocess.run(args, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    model = next((line.split(":", 1)[1].strip() for line in run("lscpu").splitlines()
                  if line.startswith("Model name")), platform.processor())
    memory = next((line.split()[1] for line in open("/proc/meminfo") if line.startswith("MemTotal")), "0")
    return {
        "cpus": os.cpu_count(), "cpu_model": model, "memory_gb": round(int(memory) / 1024 / 1024, 1),
        "python": platform.python_version(), "node": run("node", "--version"),
        "postgresql": run("psql", "--version"), "rabbitmq": run("rabbitmqctl", "-q", "version"),
        "redis": run("redis-server", "--version").split(" ")[2] if run("redis-server", "--version") else "",
        "kernel": platform.release(),
    }


def code_version():
    """The commit the system under test was built from, and whether the code
    differed from it."""
    commit = os.environ.get("BENCH_COMMIT")
    if commit:
        return {"commit": commit, "uncommitted_changes": False}
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=env.ROOT, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "services", "http_edge", "realtime", "config.yaml"],
                               cwd=env.ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": "unknown", "uncommitted_changes": None}
    return {"commit": commit or "unknown", "uncommitted_changes": bool(dirty)}


def loadavg():
    with open("/proc/loadavg") as handle:
        return [float(value) for value in handle.read().split()[:3]]


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--render"]:
        # RESULTS.md again from results.json (after editing bench/analysis.md).
        out = args[1] if len(args) > 1 else os.path.join(env.ROOT, "bench")
        with open(os.path.join(out, "results.json")) as handle:
            results = json.load(handle)
        with open(os.path.join(out, "RESULTS.md"), "w") as handle:
            handle.write(report.render(results))
        return results
    with env.exclusive("--quick" in args):
        return run(argv)


def run(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small population, short runs (about a minute)")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated: " + ", ".join(SCENARIOS))
    parser.add_argument("--out", help="directory for RESULTS.md and results.json")
    parser.add_argument("--reseed", action="store_true", help="seed again even if the database holds this size")
    parser.add_argument("--profile-seconds", type=int, help="py-spy time per profiled step (0: none)")
    parser.add_argument("--baseline", help="scenario 7: also measure this commit (one before the occurrences table)")
    parser.add_argument("--liveness-baseline", help="scenario 9: also measure this commit's auth, first")
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    quick = args.quick
    size = dict(QUICK if quick else FULL)
    if args.profile_seconds is not None:
        size["profile_s"] = args.profile_seconds
    out = args.out or (os.path.join(env.STATE_DIR, "quick") if quick else os.path.join(env.ROOT, "bench"))
    os.makedirs(out, exist_ok=True)
    log_dir = env.fresh_log_dir("quick" if quick else "full")
    profile_dir = os.path.join(out, "profiles")
    os.makedirs(profile_dir, exist_ok=True)
    started = time.monotonic()
    results = {"quick": quick, "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "machine": machine(), "code": code_version(), "loadavg_before": loadavg(), "size": size, "scenarios": {}}
    ensure_node_modules()

    def save():
        results["seconds"] = round(time.monotonic() - started, 1)
        results["loadavg_after"] = loadavg()
        with open(os.path.join(out, "results.json"), "w") as handle:
            json.dump(results, handle, indent=1)
        with open(os.path.join(out, "RESULTS.md"), "w") as handle:
            handle.write(report.render(results))

    if only & POPULATED:
        log("seeding")
        results["seed"] = seed.seed(quick, force=args.reseed, log=log)
        population = seed.population(quick, size["load_users"], size["sockets"])
        data = {
            "load_users": tokens_for(population["load_users"]),
            "authors": population["authors"], "public_events": population["public_events"],
            "login_users": population["load_users"], "password": seed.PASSWORD,
        }
        readers = tokens_for(population["readers"])
        realtime_users = tokens_for(population["realtime_users"])
    else:
        results["seed"] = seed.tables_only(quick)

    if "rpc" in only:
        log("scenario 2: RPC cost")
        results["scenarios"]["rpc"] = rpc_cost(quick, size, log_dir, profile_dir)
        save()

    env.reset_vhost(env.vhost_name(quick))
    import redis

    redis.Redis(db=env.redis_db(quick)).flushdb()
    if only & {"mix", "realtime", "storm", "feed", "shapes"}:
        log("starting the system, one process per service")
        system = env.System("split", quick, log_dir, extra_realtime="realtime" in only)
        results["split_pids"] = system.pids()
        try:
            if "mix" in only or "shapes" in only:
                log("scenario 1: mixed workload (one process per service)")
                results["scenarios"]["mix_split"] = mixed_workload(system, data, size, profile_dir)
                save()
            if "feed" in only:
                log("scenario 5: feed scaling")
                results["scenarios"]["feed"] = feed_scaling(system, readers, size)
                save()
            if "storm" in only:
                log("scenario 4: login storm")
                results["scenarios"]["storm"] = login_storm(system, data, population["public_events"][0], size,
                                                            profile_dir)
                save()
            if "realtime" in only and len(system.realtime_urls) >= 2:
                log("scenario 3: real-time delivery")
                results["scenarios"]["realtime"] = realtime_delivery(system, realtime_users, size)
                save()
        finally:
            system.stop()
    if "shapes" in only:
        log("scenario 6: every service in one process")
        system = env.System("one", quick, log_dir)
        try:
            results["scenarios"]["mix_one"] = mixed_workload(system, data, size, profile_dir)
        finally:
            system.stop()
        save()
    if "search" in only:
        log("scenario 7: range queries")
        results["scenarios"]["search"] = dict(search.range_queries(quick, log_dir, tokens_for, args.baseline, log),
                                              after=results["code"]["commit"])
    if "ics" in only:
        log("scenario 8: calendar import bombs beside /health, one process")
        # Its own time, code and load: it may be run alone (--only ics) and
        # its figures merged into a full run's results.
        started_at, load_before = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), loadavg()
        found = imports.import_bombs(quick, size, log_dir, openloop)
        results["scenarios"]["ics"] = dict(found, started_at=started_at, code=code_version(),
                                           loadavg_before=load_before, loadavg_after=loadavg())
    if "liveness" in only:
        log("scenario 9: /health beside a login storm, auth alone")
        # Its own time, code and load, as scenario 8.
        started_at, load_before = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), loadavg()
        found = liveness.health_under_login_storm(quick, size, log_dir, openloop, args.liveness_baseline, log)
        results["scenarios"]["liveness"] = dict(found, started_at=started_at, code=code_version(),
                                                loadavg_before=load_before, loadavg_after=loadavg())
    if "revocation" in only:
        log("scenario 10: the revocation check per request")
        started_at, load_before = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), loadavg()
        found = revocation.revocation_cost(quick, f"redis://127.0.0.1:6379/{env.redis_db(quick)}", log)
        results["scenarios"]["revocation"] = dict(found, started_at=started_at, code=code_version(),
                                                  loadavg_before=load_before, loadavg_after=loadavg())
    save()
    log(f"done in {results['seconds']} s: {os.path.join(out, 'RESULTS.md')}")
    return results


if __name__ == "__main__":
    main()
