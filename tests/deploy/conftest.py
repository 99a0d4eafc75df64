"""Docker for the deploy tests: a working engine, the product's images and
the stand-ins for the upstream images, each built once per run (docker's
build cache makes a rebuild of an unchanged tree take seconds)."""
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import ROOT, unavailable

TARGETS = ("auth", "events", "messages", "realtime", "migrations")
STANDINS = ("postgres", "rabbitmq", "redis", "minio", "nginx")
STANDINS_DIR = os.path.join(ROOT, "tests", "deploy", "standins")
TAG = "test-" + (os.environ.get("LIFYTP_TEST_ID") or "local")
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
BUILD_TIMEOUT = 1200


def run(args, timeout=120, check=True, **kwargs):
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError("{} exited {}:\n{}\n{}".format(
            " ".join(args[:6]), result.returncode, result.stdout[-3000:], result.stderr[-3000:]))
    return result


def loud_skip(reason):
    unavailable("IMAGE TEST NOT RUN: " + reason)


@pytest.fixture(scope="session")
def docker():
    script = os.path.join(ROOT, "deploy", "local", "container-runtime.sh")
    try:
        result = subprocess.run([script], capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        loud_skip("installing or starting docker took over 10 minutes")
    if result.returncode != 0:
        loud_skip(f"no working docker on this machine ({result.stderr.strip()[-500:]})")
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def base_image(docker):
    run([os.path.join(ROOT, "deploy", "docker", "base-image.sh")], timeout=900, env=dict(os.environ, DOCKER=docker))


def build(docker, context, target, tag):
    args = [docker, "build", "--network", "host", "--target", target, "--tag", tag]
    if os.path.exists(CA_BUNDLE):
        args += ["--secret", "id=pip_ca,src=" + CA_BUNDLE]
    started = time.monotonic()
    run(args + [context], timeout=BUILD_TIMEOUT, env=dict(os.environ, DOCKER_BUILDKIT="1"))
    return time.monotonic() - started


@pytest.fixture(scope="session")
def images(docker, base_image):
    """The Dockerfile's targets, as lifytp-<target>:<TAG>."""
    built, timings = {}, {}
    for target in TARGETS:
        built[target] = f"lifytp-{target}:{TAG}"
        timings[target] = build(docker, ROOT, target, built[target])
    print("\nimage build (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    return built


@pytest.fixture(scope="session")
def standin_images(docker, base_image):
    """tests/deploy/standins as lifytp-standin-<name>:<TAG>, built side by side (mostly apt downloads)."""
    tags = {name: f"lifytp-standin-{name}:{TAG}" for name in STANDINS}
    with ThreadPoolExecutor(len(STANDINS)) as pool:
        seconds = pool.map(lambda name: build(docker, STANDINS_DIR, name, tags[name]), STANDINS)
        timings = dict(zip(STANDINS, seconds, strict=True))
    print("\nstand-in build (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    return tags
