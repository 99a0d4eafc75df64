"""The API against its own OpenAPI document: schemathesis generates requests
from /openapi.json (valid and invalid) and checks every answer: no 5xx, and
status codes, content types and bodies as documented."""
import os
import subprocess

import pytest

from tests.conftest import ROOT, STATE_DIR

pytestmark = pytest.mark.integration

MAX_EXAMPLES = int(os.environ.get("LIFYTP_CONTRACT_EXAMPLES", "15"))
# CI runs one fixed seed; another seed explores other requests.
SEED = os.environ.get("LIFYTP_CONTRACT_SEED", "1")


def test_document_lists_every_route_the_services_serve(api):
    from services.api import api_document

    document = api.get("/openapi.json").json()
    assert document["openapi"] == "3.1.0"
    assert document == api_document()
    assert {"/auth/register", "/events", "/messages", "/feed"} <= set(document["paths"])


def test_docs_page_is_served_from_the_package(api):
    page = api.get("/docs/")
    assert page.status_code == 200 and "swagger-ui-bundle.js" in page.text
    assert api.get("/docs/swagger-ui-bundle.js").status_code == 200
    assert api.get("/docs/../config.yaml").status_code == 404


def test_every_operation_answers_as_documented(api, system):
    user = api.register()
    report = os.path.join(STATE_DIR, "schemathesis.txt")
    result = subprocess.run(
        [os.path.join(ROOT, ".venv", "bin", "schemathesis"),
         "--config-file", os.path.join(ROOT, "tests", "contract", "schemathesis.toml"),
         "run", system.base_url + "/openapi.json",
         "--checks", "all", "--max-examples", str(MAX_EXAMPLES), "--seed", SEED,
         "--header", "Authorization: Bearer " + user["access_token"],
         "--request-timeout", "15", "--no-color"],
        capture_output=True, text=True, cwd=STATE_DIR, timeout=900,  # its cache stays out of the tree
    )
    with open(report, "w") as handle:
        handle.write(result.stdout + result.stderr)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
