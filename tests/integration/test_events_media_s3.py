"""The S3 media backend for real, against moto's S3 server on a loopback port:
the storage class on its own, then the events service configured with
MEDIA_STORAGE=s3 serving uploads through redirects.

boto3 runs in child processes only: a pytest plugin that imports ssl before
conftest monkey-patches (schemathesis) leaves this process's SSLContext
recursing inside botocore.
"""
import json
import socket
import subprocess
import sys
import textwrap

import pytest
import requests
from moto.server import ThreadedMotoServer

from tests.conftest import ROOT, Api, RunningSystem
from tests.fixtures.events.media_samples import decoded, phone_photo, png_bytes, video_file

pytestmark = pytest.mark.integration

BUCKET = "lifytp-media-test"
CREDENTIALS = {"S3_ACCESS_KEY_ID": "testing", "S3_SECRET_ACCESS_KEY": "testing", "S3_REGION": "us-east-1"}


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    assert requests.put(f"{endpoint}/{BUCKET}", timeout=5).status_code == 200
    yield endpoint
    server.stop()


STORAGE_SCRIPT = textwrap.dedent("""
    import json, sys
    from services.events.storage import S3Storage
    storage = S3Storage(sys.argv[1], sys.argv[2], "us-east-1", "testing", "testing")
    storage.ping()
    storage.put("some-key", b"bytes of a picture", "image/png")
    data, url = storage.get("some-key")
    behind_an_edge = S3Storage(sys.argv[1], sys.argv[2], "us-east-1", "testing", "testing",
                               public_endpoint_url="https://api.lifytp.example/")
    print(json.dumps({"data": data, "url": url, "public_url": behind_an_edge.get("some-key")[1]}))
    sys.stdout.flush()
    sys.stdin.readline()  # the test fetches the URL meanwhile
    storage.delete("some-key")
""")


def test_s3_storage_puts_serves_and_deletes(s3_endpoint):
    child = subprocess.Popen([sys.executable, "-c", STORAGE_SCRIPT, BUCKET, s3_endpoint], cwd=ROOT,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        answer = json.loads(child.stdout.readline())
        assert answer["data"] is None and answer["url"].startswith(s3_endpoint)
        # Behind an edge: signed for the public host, on the bucket's own path, which the edge routes.
        assert answer["public_url"].startswith(f"https://api.lifytp.example/{BUCKET}/some-key?")
        assert "X-Amz-Signature=" in answer["public_url"]
        fetched = requests.get(answer["url"], timeout=5)
        assert fetched.status_code == 200 and fetched.content == b"bytes of a picture"
        assert fetched.headers["Content-Type"] == "image/png"
        child.communicate("go\n", timeout=30)
        assert child.returncode == 0
        assert requests.get(answer["url"], timeout=5).status_code == 404
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_events_service_with_s3_storage(system, s3_endpoint):
    env = dict(CREDENTIALS, MEDIA_STORAGE="s3", S3_ENDPOINT_URL=s3_endpoint, S3_BUCKET=BUCKET)
    running = RunningSystem(free_port(), env=env, log_name="events-s3",
                            modules=("services.auth.service", "services.events.service"))
    try:
        running.wait_until_ready(probe_paths=("/auth/me", "/events"))
        api = Api(running.base_url)
        ann = api.register()
        picture = png_bytes()
        uploaded = api.post("/media", user=ann, files={"file": ("a.png", picture)})
        assert uploaded.status_code == 201, uploaded.text
        redirect = api.get(uploaded.json()["url"], allow_redirects=False)
        assert redirect.status_code == 302 and redirect.headers["Location"].startswith(s3_endpoint)
        assert decoded(requests.get(redirect.headers["Location"], timeout=5).content) == decoded(picture)
        # What phones send: a 2-5 MB photo (published without its GPS) and 60 s videos.
        photo = phone_photo(2000, 1500)
        assert 2_000_000 <= len(photo) <= 5_500_000
        for name, data in (("IMG_1.jpg", photo), ("clip.mp4", video_file("clip-60s.mp4")),
                           ("clip.webm", video_file("clip-60s.webm"))):
            uploaded = api.post("/media", user=ann, files={"file": (name, data)})
            assert uploaded.status_code == 201, (name, uploaded.text)
            redirect = api.get(uploaded.json()["url"], allow_redirects=False)
            assert redirect.status_code == 302, name
            published = requests.get(redirect.headers["Location"], timeout=10).content
            assert len(published) == uploaded.json()["size"]
            if name.startswith("IMG"):
                assert decoded(published) == ("JPEG", (1500, 2000), {}, {})
            else:
                assert published == data
    finally:
        running.stop()
