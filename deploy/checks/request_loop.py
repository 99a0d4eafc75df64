#!/usr/bin/env python3
"""A steady loop of requests against a deployed LifyTP, counting the ones that
fail, while something is done to the system (a pod deleted, a rollout):

    python3 deploy/checks/request_loop.py http://lifytp.localhost [--seconds 60] [--json tally.json]

Each request is `GET <path>` (default /auth/me, which auth answers 401 without
a token); an answer with one of the --ok statuses counts as served, anything
else (another status, a refused connection, no answer within --timeout) as
failed, printed as it happens. Runs until --seconds have passed or it gets
SIGTERM or SIGINT, then prints the tally (and writes it with --json); exit
status 1 if any request failed. deploy/checks/demos.py runs it in a thread.
"""
import argparse
import json
import signal
import sys
import threading
import time

import requests


class Tally:
    """Requests sent and the ones that failed, with when (seconds from the start)."""

    def __init__(self):
        self.requests = 0
        self.failures = []

    def record(self, at, outcome, served):
        self.requests += 1
        if not served:
            self.failures.append({"request": self.requests, "at_s": round(at, 3), "outcome": outcome})

    def summary(self):
        return {"requests": self.requests, "failed": len(self.failures), "failures": self.failures[:50]}


class RequestLoop:
    def __init__(self, base, path="/auth/me", ok=(200, 401), interval=0.05, timeout=3.0,
                 say=lambda line: print(line, flush=True)):
        self.url = base.rstrip("/") + path
        self.ok = set(ok)
        self.interval = interval
        self.timeout = timeout
        self.say = say
        self.tally = Tally()
        self.stopped = threading.Event()
        self.started = None

    def once(self, http):
        at = time.monotonic() - self.started
        try:
            status = http.get(self.url, timeout=self.timeout).status_code
            outcome, served = str(status), status in self.ok
        except requests.RequestException as error:
            outcome, served = type(error).__name__, False
        self.tally.record(at, outcome, served)
        if not served:
            self.say(f"request {self.tally.requests} at {at:.1f}s failed: {outcome}")

    def run(self, seconds=None):
        self.say(f"GET {self.url} every {self.interval}s")
        self.started = time.monotonic()
        with requests.Session() as http:
            while not self.stopped.is_set():
                if seconds is not None and time.monotonic() - self.started >= seconds:
                    break
                self.once(http)
                self.stopped.wait(self.interval)
        return self.tally.summary()

    def stop(self):
        self.stopped.set()

    def in_background(self):
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        return thread


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base_url")
    parser.add_argument("--path", default="/auth/me")
    parser.add_argument("--ok", default="200,401", help="statuses that count as served (comma-separated)")
    parser.add_argument("--interval", type=float, default=0.05, help="pause between requests, seconds")
    parser.add_argument("--timeout", type=float, default=3.0, help="a request unanswered this long fails")
    parser.add_argument("--seconds", type=float, help="stop after this long (default: at SIGTERM or SIGINT)")
    parser.add_argument("--json", help="write the tally to this file")
    args = parser.parse_args(argv)
    loop = RequestLoop(args.base_url, args.path, [int(s) for s in args.ok.split(",")], args.interval, args.timeout)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: loop.stop())
    tally = loop.run(args.seconds)
    print(f"{tally['requests']} requests, {tally['failed']} failed")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(tally, out, indent=1)
    return 1 if tally["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
