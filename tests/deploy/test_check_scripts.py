"""The pure parts of deploy/checks/ (no cluster, no network): how demos.py
tells a replacement pod is Ready, the table it writes to the job summary, and
how the request loop tallies. The loop itself runs against the compose stack
(test_compose.py); the demonstrations run on kind in CI."""
import importlib
import os
import sys

import pytest

from tests.conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "deploy", "checks"))
demos = importlib.import_module("demos")
request_loop = importlib.import_module("request_loop")
sys.path.pop(0)


def pod(name, ready, deleting=False):
    metadata = {"name": name, **({"deletionTimestamp": "2026-12-03T08:00:00Z"} if deleting else {})}
    return {"metadata": metadata, "status": {"conditions": [
        {"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True" if ready else "False"}]}}


def test_a_replacement_counts_once_it_is_ready_and_new():
    before = ["auth-a", "auth-b"]
    assert demos.replacement([pod("auth-a", True, deleting=True), pod("auth-b", True)], before) is None
    assert demos.replacement([pod("auth-b", True), pod("auth-c", False)], before) is None
    assert demos.replacement([pod("auth-b", True), pod("auth-c", True)], before) == "auth-c"


def test_a_terminating_pod_is_not_ready_even_while_its_condition_says_so():
    assert demos.ready_names([pod("auth-a", True, deleting=True), pod("auth-b", True), {"metadata": {"name": "x"}}]
                             ) == ["auth-b"]


def test_the_summary_table_gives_requests_failures_and_seconds():
    table = demos.table([("auto-healing", "replacement Ready", {"requests": 812, "failed": 0, "seconds": 14.2})])
    assert table.splitlines() == ["| demonstration | requests | failed (target 0) | seconds |", "|---|---|---|---|",
                                  "| auto-healing | 812 | 0 | replacement Ready after 14.2 s |"]


def test_the_tally_numbers_each_failure_and_counts_every_request():
    tally = request_loop.Tally()
    for at, outcome, served in [(0.1, "401", True), (0.2, "502", False), (0.3, "ConnectionError", False),
                                (0.4, "200", True)]:
        tally.record(at, outcome, served)
    assert tally.summary() == {"requests": 4, "failed": 2, "failures": [
        {"request": 2, "at_s": 0.2, "outcome": "502"}, {"request": 3, "at_s": 0.3, "outcome": "ConnectionError"}]}


@pytest.mark.parametrize("status, served", [(200, True), (401, True), (404, False), (502, False), (503, False)])
def test_only_the_expected_statuses_count_as_served(status, served):
    loop = request_loop.RequestLoop("http://api.example", say=lambda line: None)
    loop.started = 0

    class Answer:
        status_code = status

    class Http:
        def get(self, url, timeout):
            assert url == "http://api.example/auth/me"
            return Answer()

    loop.once(Http())
    assert loop.tally.summary()["failed"] == (0 if served else 1)
