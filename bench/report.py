"""RESULTS.md from results.json, and py-spy profiles boiled down to a table."""
import collections
import os
import re

TARGETS = {
    "mix": "p99 < 200 ms at the highest rate held",
    "rpc": "Nameko >= 0.5 x raw kombu calls/s",
    "realtime": "p99 < 100 ms",
    "storm": "storm p99 < 2 x calm p99",
    "feed": "p99 < 50 ms at 1,000 followed, growing slower than the number followed",
    "search": "walking a week's pages yields every occurrence once, in order",
    "ics": "/health p99 < 100 ms while import bombs run in the same process",
    "liveness": "/health p99 < 100 ms while logins (bcrypt 12) saturate auth",
    "revocation": "the revocation check adds < 0.5 ms of CPU per request (a whole request costs 14-19 ms)",
}


def _frame_name(frame):
    # py-spy raw frames: "function (path/to/file.py:line)"
    match = re.match(r"(.*) \((.*?):?(\d+)?\)$", frame.strip())
    if not match:
        return frame.strip()
    function, path = match.group(1), match.group(2)
    for marker in ("site-packages/", "lib/python3.11/", "/work/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    path = re.sub(r"^main/", "", path)
    return f"{function} ({path})"


def summarize_profile(path, top=12):
    self_counts = collections.Counter()
    inclusive = collections.Counter()
    total = 0
    with open(path) as handle:
        for line in handle:
            line = line.rstrip("\n")
            if not line or " " not in line:
                continue
            stack, _, count = line.rpartition(" ")
            try:
                count = int(count)
            except ValueError:
                continue
            frames = [_frame_name(frame) for frame in stack.split(";") if frame and not frame.startswith("process ")
                      and not frame.startswith("thread ")]
            if not frames:
                continue
            total += count
            self_counts[frames[-1]] += count
            for frame in set(frames):
                inclusive[frame] += count
    def share(counter):
        return [[name, round(100 * count / total, 1)] for name, count in counter.most_common(top)] if total else []
    interesting = collections.Counter({name: count for name, count in inclusive.items()
                                       if any(key in name for key in ("services/", "http_edge/", "realtime/",
                                                                      "sqlalchemy", "psycopg2", "kombu", "amqp/",
                                                                      "nameko/", "bcrypt", "jwt", "json",
                                                                      "socketio", "engineio", "redis/"))})
    return {"samples": total, "file": os.path.basename(path), "top_self": share(self_counts),
            "top_inclusive": share(interesting)}


def _fmt(value, unit=""):
    if value is None:
        return "–"
    if isinstance(value, float):
        value = f"{value:,.1f}" if value >= 10 else f"{value:,.2f}"
    elif isinstance(value, int):
        value = f"{value:,}"
    return f"{value}{unit}"


def _mix_table(mix):
    lines = ["| offered req/s | achieved req/s | p50 ms | p99 ms | errors | feed p99 | user posts p99 | new post p99 "
             "| generator CPU | send lag p99 ms | held |", "|" + "---|" * 11]
    for step in mix["steps"]:
        kinds = step["by_kind_p99_ms"]
        lines.append(f"| {step['rate']} | {_fmt(step['throughput'])} | {_fmt(step['p50_ms'])} | {_fmt(step['p99_ms'])} "
                     f"| {_fmt(step['errors'])} | {_fmt(kinds.get('feed'))} | {_fmt(kinds.get('user_posts'))} "
                     f"| {_fmt(kinds.get('new_post'))} | {_fmt(step['generator_cpu'])} "
                     f"| {_fmt(step.get('send_lag_p99_ms'))} "
                     f"| {'yes' if step['held'] else 'no'} |")
    return "\n".join(lines)


def _cpu_table(mix):
    steps = [step for step in mix["steps"] if step.get("cpu_ms_per_request")]
    if not steps:
        return ""
    names = [name for name in steps[0]["cpu_ms_per_request"] if name != "_total"]
    lines = ["CPU milliseconds per completed request, by process (PostgreSQL, RabbitMQ and Redis are every "
             "process of that server on the machine; `machine` is all busy CPU, anyone's):", "",
             "| offered req/s | " + " | ".join(names) + " | machine |", "|" + "---|" * (len(names) + 2)]
    for step in steps:
        cpu = step["cpu_ms_per_request"]
        lines.append(f"| {step['rate']} | " + " | ".join(_fmt(cpu.get(name)) for name in names)
                     + f" | {_fmt(cpu.get('_total'))} |")
    return "\n".join(lines) + "\n"


def verdicts(results):
    s = results["scenarios"]
    rows = []
    if "mix_split" in s:
        held = s["mix_split"]["max_held_rate"]
        rows.append(("1. mixed workload", TARGETS["mix"], f"held {_fmt(held)} req/s", held is not None))
    if "rpc" in s:
        ratio = s["rpc"]["ratios_to_raw"].get("nameko_service_to_service")
        best = max(((name, value) for name, value in s["rpc"]["ratios_to_raw"].items() if name.startswith("nameko")),
                   key=lambda item: item[1])
        rows.append(("2. RPC cost", TARGETS["rpc"], f"{_fmt(ratio)} x raw as shipped; best variant {best[0]} "
                     f"{_fmt(best[1])} x", bool(ratio and ratio >= 0.5)))
    if "realtime" in s:
        rt = s["realtime"]
        rows.append(("3. real-time delivery", TARGETS["realtime"], f"p99 {_fmt(rt['p99_ms'])} ms, "
                     f"{rt['delivered']}/{rt['expected']} delivered",
                     bool(rt["p99_ms"] is not None and rt["p99_ms"] < 100 and rt["delivered"] == rt["expected"])))
    if "storm" in s:
        levels = s["storm"].get("levels", [s["storm"]])
        measured = "; ".join(f"{_fmt(level.get('ratio'))} x calm p99 at {level['login_rate']} logins/s"
                             for level in levels)
        met = "; ".join(("yes" if level.get("ratio") and level["ratio"] < 2 else "**no**")
                        + f" at {level['login_rate']}/s" for level in levels)
        rows.append(("4. login storm", TARGETS["storm"], measured, met))
    if "feed" in s:
        feed = {entry["following"]: entry["p99_ms"] for entry in s["feed"]}
        at_1000 = feed.get(1000)
        counts = sorted(count for count in feed if feed[count])
        # Between the two largest sizes, where the fixed cost of a request no longer hides the growth.
        growth = (feed[counts[-1]] / feed[counts[-2]]) if len(counts) > 1 else None
        followed = (counts[-1] / counts[-2]) if len(counts) > 1 else None
        rows.append(("5. feed scaling", TARGETS["feed"],
                     f"p99 {_fmt(at_1000)} ms at 1,000; p99 x{_fmt(growth)} from "
                     f"{counts[-2] if len(counts) > 1 else '-'} to {counts[-1] if counts else '-'} followed "
                     f"(x{_fmt(followed)} followed)",
                     bool(at_1000 is not None and at_1000 < 50 and growth is not None and growth < followed)))
    if "mix_one" in s and "mix_split" in s:
        one, split = s["mix_one"]["max_held_rate"], s["mix_split"]["max_held_rate"]
        ratio = round(one / split, 2) if one and split else None
        rows.append(("6. one process vs split", "a ratio (no target)",
                     f"held {_fmt(one)} vs {_fmt(split)} req/s (x{_fmt(ratio)})", None))
    if "search" in s:
        walk = s["search"]["systems"]["after"]["walk"]
        expected = s["search"]["expected_week_occurrences"]
        measured = f"{walk['distinct']:,} of {expected:,} occurrences in {walk['pages']} pages"
        if "before" in s["search"]["systems"]:
            ratios = s["search"]["ratios"]
            measured += (f" (before: {s['search']['systems']['before']['walk']['distinct']:,}); CPU per request "
                         "after/before " + ", ".join(f"{name} x{_fmt(value.get('cpu_ms'))}"
                                                     for name, value in ratios["queries"].items()))
        rows.append(("7. range queries", TARGETS["search"], measured,
                     walk["distinct"] == walk["items"] == expected and walk["in_order"]))
    if "ics" in s:
        ics = s["ics"]
        under, calm = ics["under_bombs"]["p99_ms"], ics["calm"]["p99_ms"]
        rows.append(("8. import bombs", TARGETS["ics"], f"p99 {_fmt(under)} ms under {ics['uploaders']} uploaders "
                     f"of bombs (calm {_fmt(calm)} ms)", bool(under is not None and under < 100
                                                               and not ics["under_bombs"]["errors"])))
    if "liveness" in s:
        systems = s["liveness"]["systems"]
        after = systems["after"]
        p99 = after["under_storm"]["p99_ms"]
        measured = f"p99 {_fmt(p99)} ms, {_fmt(after['logins_per_s'])} logins/s"
        if "before" in systems:
            before = systems["before"]
            measured += (f" (before: p99 {_fmt(before['under_storm']['p99_ms'])} ms, "
                         f"{_fmt(before['logins_per_s'])} logins/s)")
        rows.append(("9. /health under a login storm", TARGETS["liveness"], measured,
                     bool(p99 is not None and p99 < 100 and not after["under_storm"]["errors"])))
    if "revocation" in s:
        found = s["revocation"]
        rows.append(("10. revocation check", TARGETS["revocation"],
                     f"+{_fmt(found['check_cpu_us'])} µs CPU, +{_fmt(found['check_latency_us'])} µs latency per "
                     f"request (x{_fmt(found['cpu_ratio'])} CPU of the signature check alone)",
                     found["check_cpu_us"] < 500))
    lines = ["| scenario | target | measured | met |", "|---|---|---|---|"]
    for name, target, measured, met in rows:
        verdict = met if isinstance(met, str) else ("–" if met is None else ("yes" if met else "**no**"))
        lines.append(f"| {name} | {target} | {measured} | {verdict} |")
    return "\n".join(lines) + "\n"


def _profile_tables(profiles):
    out = []
    for name, found in profiles.items():
        if not found.get("samples"):
            continue
        out.append(f"*{name}* ({found['samples']} samples, `{found['file']}`), share of samples, inclusive:\n")
        out.append("| frame | % |\n|---|---|")
        for frame, pct in found["top_inclusive"][:10]:
            out.append(f"| `{frame}` | {pct} |")
        out.append("\nSelf time:\n\n| frame | % |\n|---|---|")
        for frame, pct in found["top_self"][:8]:
            out.append(f"| `{frame}` | {pct} |")
        out.append("")
    return "\n".join(out)


def _search_section(search):
    systems = search["systems"]
    population = search["population"]
    before = systems.get("before")
    run = search.get("run")
    out = ["## 7. Range queries", "",
           f"Run started {search['started_at']}"
           + (f" (`{run['command']}`, load average {run['loadavg_before']} before, {run['loadavg_after']} after)"
              if run else "")
           + (f"; before = commit {search['baseline']}, after = commit {search.get('after')}, on the same database"
              if before else "")
           + f". A database of its own: {population['users']:,} users, {population['single_events']:,} single "
             f"events, {population['series']:,} recurring series (weekly, daily, twice a week, monthly; UTC, Paris, "
             f"New York) and one user's {population['flood_series']} daily public series, all starting before the "
             f"others in the window; the reader of `/calendar` joined {population['joined_by_reader']} events. "
             f"Written at the schema before the occurrences table; the upgrade filled "
             f"{search['occurrence_rows']:,} occurrence rows in {_fmt(search['backfill_s'])} s (with the other "
             "services' migration check). One request at a time (service time, no queueing), every service in "
             "one process.", ""]
    ratios = search.get("ratios")
    measured = ("p50 ms", "p99 ms", "CPU ms")
    columns = ["query", *([f"before {label}" for label in measured] if before else []),
               *[f"after {label}" for label in measured], *(["after/before p50", "after/before CPU"] if before else [])]
    out += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for name in systems["after"]["queries"]:
        cells = [name]
        for found in ((before, systems["after"]) if before else (systems["after"],)):
            figures = found["queries"][name]
            cells += [_fmt(figures["p50_ms"]), _fmt(figures["p99_ms"]), _fmt(figures["cpu_ms"])]
        if before:
            cells += [f"**x{_fmt(ratios['queries'][name].get(key))}**" for key in ("p50_ms", "cpu_ms")]
        out.append("| " + " | ".join(cells) + " |")
    out += ["", "CPU ms: the system process's CPU time per request, the steadier figure on a shared machine "
            "(PostgreSQL's is not counted).", "",
            f"Every page (limit 100) of the 7-day window, walked {systems['after']['walk']['walks']} times:", "",
            "| system | pages | items | distinct | in order | expected | ms per page | CPU ms per page |",
            "|" + "---|" * 8]
    for label, found in (("before", before), ("after", systems["after"])):
        if found:
            walk = found["walk"]
            out.append(f"| {label} | {walk['pages']} | {walk['items']:,} | {walk['distinct']:,} "
                       f"| {'yes' if walk['in_order'] else 'no'} | {search['expected_week_occurrences']:,} "
                       f"| {_fmt(walk['ms_per_page'])} | {_fmt(walk['cpu_ms_per_page'])} |")
    if before:
        out += ["", f"Per page, after/before: time **x{_fmt(ratios['walk'].get('ms_per_page'))}**, "
                f"CPU **x{_fmt(ratios['walk'].get('cpu_ms_per_page'))}**."]
    return out + [""]
def _ics_section(ics):
    code = ics.get("code", {})
    out = ["## 8. Calendar import bombs beside /health", "",
           f"Run {ics.get('started_at')} (it can run alone: `python -m bench --only ics`) from commit "
           f"{code.get('commit', 'unknown')}"
           + (" with uncommitted changes" if code.get("uncommitted_changes") else "")
           + f", load average before {ics.get('loadavg_before')}, after {ics.get('loadavg_after')}. "
           "Every service in one process; each bomb imported alone first, the process's CPU read from /proc "
           "before and after (median of the repeats):", "",
           "| bomb | bytes | answer | process CPU s | wall s |", "|---|---|---|---|---|"]
    for name, cost in ics["cost_per_import"].items():
        out.append(f"| {name} | {cost['bytes']:,} | {cost['status']} | {_fmt(cost['cpu_s'])} "
                   f"| {_fmt(cost['wall_s'])} |")
    out += ["", f"Then `GET /health` open loop at {ics['health_rate']} req/s for {ics['duration_s']} s, alone and "
            f"while {ics['uploaders']} clients post those bombs back to back ({ics['imports_done']} imports; the "
            f"process at {_fmt(ics['process_cpu_fraction_under_bombs'])} of a core):", "",
            "| /health | requests | errors | p50 ms | p99 ms | max ms |", "|---|---|---|---|---|---|"]
    for label, key in (("alone", "calm"), ("under bombs", "under_bombs")):
        found = ics[key]
        out.append(f"| {label} | {found['requests']} | {found['errors']} | {_fmt(found['p50_ms'])} "
                   f"| {_fmt(found['p99_ms'])} | {_fmt(found['max_ms'])} |")
    calm, under = ics["calm"]["p99_ms"], ics["under_bombs"]["p99_ms"]
    if calm and under:
        out += ["", f"p99 under bombs / alone: **x{_fmt(round(under / calm, 2))}**, in one run."]
    out += ["", "Imports by bomb and answer: " + ", ".join(f"{key}: {value}"
                                                      for key, value in ics["import_statuses"].items()) + ".", ""]
    return out


def revocation_section(found):
    code = found.get("code", {})
    alone, checked = found["signature"], found["signature_and_check"]
    return ["## 10. The revocation check per request", "",
            f"Run {found.get('started_at')} (alone: `python -m bench.revocation`) from commit "
            f"{code.get('commit', 'unknown')}, load average before {found.get('loadavg_before')}. "
            f"One process verifies {found['requests_per_round']:,} access tokens per round, first by signature "
            "alone, then by signature and the revocation check (one round trip to the real Redis, two ZSCOREs "
            "pipelined, a tenth of the "
            f"sessions revoked), rounds alternating; median of {found['rounds']} rounds:", "",
            "| per request | latency µs | CPU µs |", "|---|---|---|",
            f"| signature alone | {_fmt(alone['latency_us'])} | {_fmt(alone['cpu_us'])} |",
            f"| signature and revocation check | {_fmt(checked['latency_us'])} | {_fmt(checked['cpu_us'])} |",
            f"| the check | {_fmt(found['check_latency_us'])} | {_fmt(found['check_cpu_us'])} |",
            f"| with / without | x{_fmt(found['latency_ratio'])} | x{_fmt(found['cpu_ratio'])} |", "",
            "A whole authenticated request costs 14-19 ms of CPU in scenario 1, so the check is about "
            f"{_fmt(round(100 * found['check_cpu_us'] / 16500, 1))} % of it; its latency is one round trip to "
            "Redis on the same machine.", ""]


def _liveness_section(found):
    code = found.get("code", {})
    systems = found["systems"]
    settings = found["settings"]
    out = ["## 9. /health beside a login storm", "",
           f"Run {found.get('started_at')} (it can run alone: `python -m bench --only liveness`, with "
           "`--liveness-baseline REF` to measure that commit first) from commit "
           f"{code.get('commit', 'unknown')}" + (" with uncommitted changes" if code.get("uncommitted_changes") else "")
           + (f"; before = commit {found['baseline']}" if found.get("baseline") else "")
           + f", load average before {found.get('loadavg_before')}, after {found.get('loadavg_after')}. "
           f"Auth alone in its process with `MAX_WORKERS={settings['MAX_WORKERS']}`, "
           f"`BCRYPT_ROUNDS={settings['BCRYPT_ROUNDS']}`; {found['clients']} clients log in back to back (every "
           "worker busy, as many logins waiting for one) while `GET /health` is probed open loop at "
           f"{found['health_rate']} req/s for {found['duration_s']} s, alone (calm) and under the storm; "
           f"calm and storm runs interleaved, median of {found['repeats']} runs:", "",
           "| system | calm p50 ms | calm p99 ms | storm p50 ms | storm p99 ms | storm max ms | /health errors "
           "| logins/s | auth CPU (cores) |", "|" + "---|" * 9]
    for label, system in systems.items():
        calm, under = system["calm"], system["under_storm"]
        out.append(f"| {label} | {_fmt(calm['p50_ms'])} | {_fmt(calm['p99_ms'])} | {_fmt(under['p50_ms'])} "
                   f"| **{_fmt(under['p99_ms'])}** | {_fmt(under['max_ms'])} | {under['errors']} "
                   f"| {_fmt(system['logins_per_s'])} | {_fmt(system['process_cpu_fraction'])} |")
    if "before" in systems:
        before, after = systems["before"], systems["after"]
        p99 = (before["under_storm"]["p99_ms"], after["under_storm"]["p99_ms"])
        logins = (before["logins_per_s"], after["logins_per_s"])
        out += ["", "In one run: /health p99 under the storm before/after "
                f"**x{_fmt(round(p99[0] / p99[1], 1) if all(p99) else None)}**; logins per second after/before "
                f"**x{_fmt(round(logins[1] / logins[0], 2) if all(logins) else None)}**."]
    out += ["", "Worker pool of auth when each storm's probing began and ended (in use / size, waiting): "
            + "; ".join(f"{label} " + ", ".join(
                f"{run['pool_at_start']['in_use']}/{run['pool_at_start']['size']} ({run['pool_at_start']['waiting']})"
                f" to {run['pool_at_end']['in_use']}/{run['pool_at_end']['size']} ({run['pool_at_end']['waiting']})"
                for run in system["runs"]) for label, system in systems.items()) + ".", ""]
    return out


def render(results):
    s = results["scenarios"]
    m = results["machine"]
    out = [
        "# LifyTP benchmark results" + (" (--quick: sizes too small to mean anything)" if results["quick"] else ""),
        "",
        f"Run started {results['started_at']}, took {results.get('seconds')} s. Command: "
        f"`.venv/bin/python -m bench{' --quick' if results['quick'] else ''}`.",
        "",
        f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gb']} GB RAM, Linux {m['kernel']}; "
        f"Python {m['python']}, node {m['node']}, {m['postgresql']}, RabbitMQ {m['rabbitmq']}, "
        f"Redis {m['redis']}. Load average before: {results['loadavg_before']}, after: "
        f"{results.get('loadavg_after')}. Every service, PostgreSQL, RabbitMQ, Redis and the load "
        "generators share these CPUs.",
        "",
        f"Code: commit {results.get('code', {}).get('commit', 'unknown')}"
        + (" with uncommitted changes" if results.get("code", {}).get("uncommitted_changes") else "") + ".",
        "",
        (f"Population: {results['seed']['size']} ("
         + ("reused" if results["seed"]["reused"] else f"seeded in {results['seed']['seconds']} s") + ")."
         if results["seed"]["size"] else "Population: none (no scenario that reads one ran)."),
        "",
    ]
    out += ["## Targets", "", verdicts(results)]
    analysis = os.path.join(os.path.dirname(os.path.abspath(__file__)), "analysis.md")
    if not results["quick"] and os.path.exists(analysis):
        with open(analysis) as handle:
            out += [handle.read().strip(), ""]
    if "mix_split" in s:
        mix = s["mix_split"]
        out += ["## 1. Mixed social workload (one process per service)", "",
                "60% `GET /feed`, 30% `GET /posts?author_id=` (user timelines), 10% `POST /posts` (half name an "
                "event, half carry a media id), open loop, latency from the scheduled send time; median of "
                f"{results['size']['repeats']} runs per rate.", "", _mix_table(mix), "",
                f"**Highest rate held (p99 < 200 ms, no errors, throughput >= 95% of offered): "
                f"{_fmt(mix['max_held_rate'])} req/s.**", "", _cpu_table(mix)]
    if "rpc" in s:
        rpc = s["rpc"]
        out += ["## 2. RPC cost", "", "| case | calls/s | p50 ms | p99 ms | x raw |", "|---|---|---|---|---|"]
        for name, value in rpc.items():
            if isinstance(value, dict) and "calls_per_s" in value:
                out.append(f"| {name} | {_fmt(value['calls_per_s'])} | {_fmt(value['p50_ms'])} "
                           f"| {_fmt(value['p99_ms'])} | {_fmt(rpc['ratios_to_raw'].get(name))} |")
        out.append("")
    if "realtime" in s:
        rt = s["realtime"]
        out += ["## 3. Real-time delivery", "",
                f"{rt['sockets']} sockets over {rt['replicas']} realtime replicas, {rt['conversations']} "
                f"conversations of {rt['members_per_conversation']}, {rt['message_rate']} messages/s.", "",
                "| measured | p50 ms | p99 ms |", "|---|---|---|",
                f"| POST /messages answer -> every recipient's socket | {_fmt(rt['p50_ms'])} | {_fmt(rt['p99_ms'])} |",
                f"| POST /messages sent -> every recipient's socket | {_fmt(rt['from_send_p50_ms'])} "
                f"| {_fmt(rt['from_send_p99_ms'])} |", "",
                f"Delivered {rt['delivered']} of {rt['expected']} ({rt['duplicates']} duplicates); "
                f"errors: {rt['errors'] or 'none'}.", ""]
        if rt.get("cpu_ms_per_message"):
            cpu = rt["cpu_ms_per_message"]
            out += ["CPU milliseconds per message sent, by process (the sockets' connects included):", "",
                    "| " + " | ".join(cpu) + " |", "|" + "---|" * len(cpu),
                    "| " + " | ".join(_fmt(value) for value in cpu.values()) + " |", ""]
    if "storm" in s:
        st = s["storm"]
        out += ["## 4. Login storm isolation", "",
                f"`GET /events/{{id}}` at {st['get_event_rate']} req/s alone (calm) and with `POST /auth/login` "
                "(bcrypt cost 12) at a fixed rate beside it (storm); calm and storm runs interleaved.", "",
                "| logins/s | calm p50 ms | calm p99 ms | storm p50 ms | storm p99 ms | storm/calm p99 "
                "| logins done/s | login p50 ms | login p99 ms |", "|" + "---|" * 9]
        for level in st.get("levels", [st]):
            out.append(f"| {level['login_rate']} | {_fmt(level['calm_p50_ms'])} | {_fmt(level['calm_p99_ms'])} "
                       f"| {_fmt(level['storm_p50_ms'])} | {_fmt(level['storm_p99_ms'])} "
                       f"| **{_fmt(level.get('ratio'))}** | {_fmt(level['login_throughput'])} "
                       f"| {_fmt(level['login_p50_ms'])} | {_fmt(level['login_p99_ms'])} |")
        out.append("")
    if "feed" in s:
        out += ["## 5. Feed scaling", "", "`GET /feed?limit=20` one request at a time (service time, no queueing), "
                f"up to {results['size'].get('feed_requests')} requests or {results['size'].get('feed_duration_s')} s "
                f"per run, median of {results['size']['repeats']} runs.", "",
                "| following | p50 ms | p99 ms |", "|---|---|---|"]
        for entry in s["feed"]:
            out.append(f"| {entry['following']:,} | {_fmt(entry['p50_ms'])} | {_fmt(entry['p99_ms'])} |")
        out.append("")
    if "mix_one" in s:
        out += ["## 6. Every service in one process", "", _mix_table(s["mix_one"]), "", _cpu_table(s["mix_one"]),
                f"Highest rate held: {_fmt(s['mix_one']['max_held_rate'])} req/s "
                f"(one process per service: {_fmt(s.get('mix_split', {}).get('max_held_rate'))}).", ""]
    if "search" in s:
        out += _search_section(s["search"])
    if "ics" in s:
        out += _ics_section(s["ics"])
    if "liveness" in s:
        out += _liveness_section(s["liveness"])
    if "revocation" in s:
        out += revocation_section(s["revocation"])
    profiles = [(f"Scenario 1, {key}", s[key]["profile"]["processes"]) for key in ("mix_split", "mix_one")
                if key in s and "profile" in s[key]]
    if "storm" in s and "profile" in s["storm"]:
        profiles.append(("Scenario 4, storm", s["storm"]["profile"]))
    if "rpc" in s and "profile" in s["rpc"]:
        profiles.append(("Scenario 2, service to service and raw kombu, alternating", s["rpc"]["profile"]))
    if profiles:
        out += ["## Profiles (py-spy)", "",
                "py-spy at 100 Hz on each process during one extra run (the mixed workload at its first rate not "
                "held, the heavier login storm, the RPC pair); the raw collapsed stacks are in `profiles/` beside "
                "this file (flamegraph.pl or speedscope read them). Only samples on CPU count; a process mostly "
                "waiting on the network has few.", ""]
        for title, found in profiles:
            out += [f"### {title}", "", _profile_tables(found)]
    return "\n".join(out) + "\n"
