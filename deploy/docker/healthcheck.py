"""The image's HEALTHCHECK: GET /health on the port WEB_SERVER_ADDRESS binds.

Standard library only, so the check costs one short Python start and no curl
in the image.
"""
import os
import sys
import urllib.request

address = os.environ.get("WEB_SERVER_ADDRESS", "0.0.0.0:4100")
host, _, port = address.rpartition(":")
if host in ("", "0.0.0.0", "::", "[::]"):
    host = "127.0.0.1"
try:
    with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=2) as response:
        sys.exit(0 if response.status == 200 else 1)
except Exception as exc:  # any failure is unhealthy
    print("unhealthy:", exc, file=sys.stderr)
    sys.exit(1)
