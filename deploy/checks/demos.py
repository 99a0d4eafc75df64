#!/usr/bin/env python3
"""The two demonstrations of docs/DEPLOY.md, run and measured on a cluster
(the kind job of .github/workflows/ci.yml runs them after the smoke flow):

    python3 deploy/checks/demos.py http://lifytp.localhost [--summary "$GITHUB_STEP_SUMMARY"]

- auto-healing: `kubectl delete pod` of one auth pod under a steady request
  loop (request_loop.py): failed requests (target 0) and the seconds until
  the replacement pod is Ready;
- rolling update: a new annotation on auth's pod template under the same
  loop: failed requests (target 0) and the seconds until the rollout is
  complete.

Prints a Markdown table (appended to --summary too); exit status 1 if a
request failed or a step did not finish in time. Needs kubectl on the path
with the cluster as its current context.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime

from request_loop import RequestLoop

NAMESPACE = "lifytp"
SELECTOR = "app.kubernetes.io/name=auth"
KUBECTL = os.environ.get("KUBECTL", "kubectl")
SETTLE_S = 5  # the loop runs this long before and after each change
TIMEOUT_S = 300


def kubectl(*args, timeout=TIMEOUT_S):
    result = subprocess.run([KUBECTL, "-n", NAMESPACE, *args], capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def auth_pods():
    return json.loads(kubectl("get", "pods", "-l", SELECTOR, "-o", "json"))["items"]


def is_ready(pod):
    if pod["metadata"].get("deletionTimestamp"):
        return False
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def ready_names(pods):
    return sorted(pod["metadata"]["name"] for pod in pods if is_ready(pod))


def replacement(pods, before):
    """A Ready pod that was not there before, or None."""
    return next((name for name in ready_names(pods) if name not in before), None)


def wait_for(probe, what, timeout=TIMEOUT_S, interval=0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = probe()
        if answer:
            return answer
        time.sleep(interval)
    raise TimeoutError(f"{what}: not within {timeout}s")


def under_load(base, change):
    """Run change() inside a request loop; its seconds and the loop's tally."""
    loop = RequestLoop(base)
    thread = loop.in_background()
    time.sleep(SETTLE_S)
    try:
        seconds = change()
        time.sleep(SETTLE_S)
    finally:
        loop.stop()
        thread.join(timeout=30)
    return dict(loop.tally.summary(), seconds=round(seconds, 1))


def delete_one_pod():
    before = ready_names(auth_pods())
    victim = before[0]
    started = time.monotonic()
    kubectl("delete", "pod", victim, "--wait=false")
    wait_for(lambda: replacement(auth_pods(), before), f"a Ready replacement for {victim}")
    return time.monotonic() - started


def roll_the_template():
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    patch = {"spec": {"template": {"metadata": {"annotations": {"lifytp.example/rolled-at": stamp}}}}}
    started = time.monotonic()
    kubectl("patch", "deployment", "auth", "--type", "merge", "-p", json.dumps(patch))
    kubectl("rollout", "status", "deployment/auth", f"--timeout={TIMEOUT_S}s")
    return time.monotonic() - started


def table(results):
    lines = ["| demonstration | requests | failed (target 0) | seconds |", "|---|---|---|---|"]
    for name, what, result in results:
        lines.append(f"| {name} | {result['requests']} | {result['failed']} | {what} after {result['seconds']} s |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base_url")
    parser.add_argument("--summary", help="append the Markdown table to this file")
    args = parser.parse_args(argv)
    # The autoscaler owns the count (minReplicas 2): the demonstrations need two.
    wait_for(lambda: len(ready_names(auth_pods())) >= 2, "two Ready auth pods")
    results = [
        ("auto-healing: `kubectl delete pod` of one auth pod", "replacement Ready",
         under_load(args.base_url, delete_one_pod)),
        ("rolling update: a new annotation on auth's pod template", "rollout complete",
         under_load(args.base_url, roll_the_template)),
    ]
    text = "### Kubernetes demonstrations (kind)\n\n" + table(results)
    print(text)
    if args.summary:
        with open(args.summary, "a") as out:
            out.write(text)
    for _, _, result in results:
        for failure in result["failures"]:
            print(f"failed at {failure['at_s']}s: {failure['outcome']}")
    return 1 if any(result["failed"] for _, _, result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
