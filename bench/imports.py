"""Scenario 8: calendar import bombs beside /health, in one process.

The events service reads .ics files off its event loop and bounds the work
any one of them may cause. This measures what that leaves for everything else
in the same process: the latency of `GET /health` (open loop, from each
request's scheduled send time) alone, then while clients post import bombs
back to back; and the CPU each kind of bomb costs that process, read from
/proc one import at a time (steadier than wall time on a shared machine).
"""
import statistics
import threading
import time
import uuid

import requests

from bench import env

HEALTH_STREAM = {"name": "health", "mix": [{"kind": "health", "weight": 1}]}


def _calendar(*parts):
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Bench//EN\r\n" + "".join(parts)
            + "END:VCALENDAR\r\n").encode()


def _event(uid, start, extra=""):
    return f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20270101T000000Z\r\nDTSTART;{start}\r\n{extra}END:VEVENT\r\n"


def bombs():
    """{name: (file, what it did before)}: each was found to take a core
    (or the process) for seconds to minutes."""
    secondly = ("BEGIN:VTIMEZONE\r\nTZID:X\r\nBEGIN:STANDARD\r\nDTSTART:16010101T000000\r\nRRULE:FREQ=SECONDLY\r\n"
                "TZOFFSETFROM:+0000\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\n"
                "DTSTART:16010101T000000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0000\r\nEND:DAYLIGHT\r\n"
                "END:VTIMEZONE\r\n")
    never = ["FREQ=MONTHLY;INTERVAL=12;BYMONTHDAY=30", "FREQ=DAILY;INTERVAL=2;BYMONTH=2;BYMONTHDAY=29",
             "FREQ=YEARLY;INTERVAL=100;BYMONTH=2;BYMONTHDAY=29"]
    return {
        "secondly_vtimezone": _calendar(secondly, _event("a", "TZID=X:20270101T100000")),
        "500_never_matching_rules": _calendar(*[
            _event(f"n{number}", "VALUE=DATE-TIME:20270210T090000Z", f"RRULE:{never[number % 3]}\r\n")
            for number in range(500)]),
        "500_daily_series": _calendar(*[
            _event(f"d{number}", "TZID=Europe/Paris:20270104T093000", "RRULE:FREQ=DAILY\r\n")
            for number in range(500)]),
        "49000_lines": _calendar(_event("l", "VALUE=DATE:20270101", "X-PAD:abcdefgh\r\n" * 49_000)),
    }


def _register(base_url):
    name = "ics" + uuid.uuid4().hex[:10]
    answer = requests.post(base_url + "/auth/register", timeout=60, json={
        "email": name + "@example.com", "username": name, "password": "bench import password"})
    answer.raise_for_status()
    return answer.json()["access_token"]


def _post(base_url, token, data):
    return requests.post(base_url + "/calendars/import", timeout=120, headers={"Authorization": "Bearer " + token},
                         files={"file": ("bomb.ics", data, "text/calendar")})


def cost_of_each(base_url, pid, token, files, repeats):
    """{bomb: {status, cpu_s (median of repeats), wall_s}}, one import at a time."""
    costs = {}
    for name, data in files.items():
        cpu, wall, status = [], [], None
        for _ in range(repeats):
            before, started = env.cpu_seconds(pid), time.perf_counter()
            status = _post(base_url, token, data).status_code
            wall.append(time.perf_counter() - started)
            cpu.append(env.cpu_seconds(pid) - before)
        costs[name] = {"status": status, "bytes": len(data), "cpu_s": round(statistics.median(cpu), 3),
                       "wall_s": round(statistics.median(wall), 3)}
    return costs


def _bombard(base_url, tokens, files, stop, tally):
    """Post the bombs back to back, one uploader per token, until stop is set."""
    def uploader(token, offset):
        names = list(files)
        turn = offset
        while not stop.is_set():
            name = names[turn % len(names)]
            turn += 1
            try:
                status = _post(base_url, token, files[name]).status_code
            except requests.RequestException as exc:
                status = type(exc).__name__
            with tally["lock"]:
                tally["statuses"][f"{name} {status}"] = tally["statuses"].get(f"{name} {status}", 0) + 1
    threads = [threading.Thread(target=uploader, args=(token, index), daemon=True)
               for index, token in enumerate(tokens)]
    for thread in threads:
        thread.start()
    return threads


def import_bombs(quick, size, log_dir, openloop):
    """The scenario: a one-process system of its own, /health calm and under bombs."""
    system = env.System("one", quick, log_dir)
    try:
        base_url = system.routes["events"]
        pid = system.pids()["one-process"]
        tokens = [_register(base_url) for _ in range(size["ics_uploaders"])]
        files = bombs()
        costs = cost_of_each(base_url, pid, tokens[0], files, size["ics_cost_repeats"])
        routes = {"/health": base_url}
        stream = dict(HEALTH_STREAM, rate=size["ics_health_rate"])
        openloop(routes, {}, [stream], 1)  # warm-up
        calm = openloop(routes, {}, [stream], size["ics_duration_s"])["streams"]["health"]
        stop, tally = threading.Event(), {"lock": threading.Lock(), "statuses": {}}
        cpu_before, started = env.cpu_seconds(pid), time.monotonic()
        threads = _bombard(base_url, tokens, files, stop, tally)
        try:
            time.sleep(1)  # every uploader has a bomb in flight
            under = openloop(routes, {}, [stream], size["ics_duration_s"])["streams"]["health"]
        finally:
            stop.set()
            for thread in threads:
                thread.join(150)
        cpu_used, elapsed = env.cpu_seconds(pid) - cpu_before, time.monotonic() - started
        imports = sum(tally["statuses"].values())
        return {
            "health_rate": size["ics_health_rate"], "duration_s": size["ics_duration_s"],
            "uploaders": len(tokens), "calm": _latency(calm), "under_bombs": _latency(under),
            "imports_done": imports, "import_statuses": dict(sorted(tally["statuses"].items())),
            "process_cpu_fraction_under_bombs": round(cpu_used / elapsed, 2),
            "cost_per_import": costs,
        }
    finally:
        system.stop()


def _latency(stream):
    latency = stream["latency"]
    return {"requests": stream["requests"], "ok": stream["ok"], "errors": stream["errors"],
            "p50_ms": latency["p50_ms"], "p99_ms": latency["p99_ms"], "max_ms": latency["max_ms"]}
