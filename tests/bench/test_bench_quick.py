"""The benchmark harness runs end to end on its --quick size and reports every
figure. No timing is asserted: on a shared machine the numbers mean nothing."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT, unavailable

pytestmark = pytest.mark.integration


def test_quick_benchmark_produces_every_figure(tmp_path):
    if shutil.which("node") is None:
        unavailable("the load generators run on node")
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-m", "bench", "--quick", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        # The harness sets up its own isolation; none of the test suite's settings apply.
        env={key: value for key, value in os.environ.items()
             if not key.endswith(("_DATABASE_URL", "AMQP_URI", "REDIS_URL", "WEB_SERVER_ADDRESS"))},
    )
    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads((tmp_path / "results.json").read_text())
    scenarios = results["scenarios"]

    mix = scenarios["mix_split"]
    assert mix["steps"] and all(step["p99_ms"] is not None and step["throughput"] > 0 for step in mix["steps"])
    assert {"feed", "user_posts", "new_post"} <= set(mix["steps"][0]["by_kind_p99_ms"])
    assert scenarios["mix_one"]["steps"][0]["p99_ms"] is not None

    rpc = scenarios["rpc"]
    for case in ("raw_kombu", "nameko_standalone_proxy", "nameko_service_to_service"):
        assert rpc[case]["calls_per_s"] > 0 and rpc[case]["p99_ms"] is not None
    assert rpc["ratios_to_raw"]["nameko_service_to_service"] > 0

    realtime = scenarios["realtime"]
    assert realtime["replicas"] == 2 and realtime["expected"] > 0
    assert realtime["delivered"] == realtime["expected"] and realtime["p99_ms"] is not None

    storm = scenarios["storm"]
    assert storm["calm_p99_ms"] is not None and storm["storm_p99_ms"] is not None and storm["ratio"] > 0
    assert storm["login_throughput"] > 0

    assert [entry["p99_ms"] is not None for entry in scenarios["feed"]] == [True] * 4

    search = scenarios["search"]
    walk = search["systems"]["after"]["walk"]
    # More series than a query used to expand, and still every occurrence, once.
    assert search["population"]["flood_series"] > 200
    assert walk["items"] == walk["distinct"] == search["expected_week_occurrences"] > 0 and walk["in_order"]
    assert all(value["p50_ms"] is not None and value["errors"] == 0
               for value in search["systems"]["after"]["queries"].values())

    ics = scenarios["ics"]
    assert ics["calm"]["p99_ms"] is not None and ics["under_bombs"]["p99_ms"] is not None and ics["imports_done"] > 0
    assert {cost["status"] for cost in ics["cost_per_import"].values()} <= {200, 422}

    liveness = scenarios["liveness"]["systems"]["after"]
    assert liveness["calm"]["p99_ms"] is not None and liveness["under_storm"]["p99_ms"] is not None
    assert liveness["logins_per_s"] > 0 and all(run["pool_at_start"]["in_use"] for run in liveness["runs"])

    revocation = scenarios["revocation"]
    assert revocation["signature"]["cpu_us"] > 0 and revocation["signature_and_check"]["cpu_us"] > 0
    assert revocation["cpu_ratio"] > 0 and revocation["latency_ratio"] > 0

    report = (tmp_path / "RESULTS.md").read_text()
    for heading in ("## 1.", "## 2.", "## 3.", "## 4.", "## 5.", "## 6.", "## 7.", "## 8.", "## 9.", "## 10."):
        assert heading in report
