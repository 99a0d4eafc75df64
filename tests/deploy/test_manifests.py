"""Offline checks of everything deployable; no cluster, no daemon, no network.

- `kubectl kustomize` of each overlay (with secret files made by
  deploy/make-secrets.py in a scratch copy), validated by
  `kubernetes-validate -k 1.30.0 --strict`, and what the issue asks of each
  object (probes, rollout, security, disruption budgets, autoscalers, routes,
  network policies, the migrations Job, PostgreSQL's /dev/shm and backup
  CronJob); deploy/postgres/tools likewise;
- rabbitmq/definitions.json: each service's permissions cover the names Nameko
  uses for it and nothing of the other services;
- yamllint, hadolint on every Dockerfile, actionlint on the workflows,
  shellcheck on deploy/postgres/*.sh,
  `docker compose config` of docker-compose.yml with .env.example;
- the compose edge routes every API prefix to the same process as the Ingress.

The tools are pinned in requirements-dev.txt (wheels that carry the binaries).
"""
import base64
import functools
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest
import yaml

from tests.conftest import ROOT

BIN = os.path.dirname(sys.executable)
OVERLAYS = ("local", "production")
PROCESSES = {"auth": 4100, "events": 4101, "messages": 4102, "realtime": 4103}
# CPU requests from the benchmark's CPU per request (docs/DEPLOY.md, "CPU requests").
CPU_REQUESTS = {"auth": "600m", "events": "600m", "messages": "600m", "realtime": "200m"}
ROUTES = {
    "auth": ["/auth", "/users", "/reports", "/docs", "/openapi.json"],
    "events": ["/events", "/calendar", "/calendars", "/media", "/posts", "/feed"],
    "messages": ["/messages", "/notifications"],
    "realtime": ["/socket.io"],
}
YAML_PATHS = ["deploy", "rabbitmq", "docker-compose.yml", ".github"]


def tool(name):
    path = os.path.join(BIN, name)
    if not os.path.exists(path):
        path = shutil.which(name)
    assert path, f"{name} is not installed: `make test` installs it from requirements-dev.txt"
    return path


def run(args, **kwargs):
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode == 0, f"{' '.join(args[:4])} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


@functools.cache
def scratch_copy():
    """deploy/ and rabbitmq/ in a temp dir, with every overlay's secret files generated."""
    directory = tempfile.mkdtemp(prefix="lifytp-manifests-")
    for name in ("deploy", "rabbitmq"):
        shutil.copytree(os.path.join(ROOT, name), os.path.join(directory, name),
                        ignore=shutil.ignore_patterns("*.env", "*.pem", "rabbitmq-definitions.json"))
    for overlay in OVERLAYS:
        run([sys.executable, os.path.join(directory, "deploy", "make-secrets.py"),
             os.path.join(directory, "deploy", "overlays", overlay)])
    return directory


@functools.cache
def built(overlay):
    path = os.path.join(scratch_copy(), "deploy", "overlays", overlay)
    output = run([tool("kubectl"), "kustomize", path]).stdout
    target = os.path.join(scratch_copy(), overlay + ".yaml")
    with open(target, "w") as handle:
        handle.write(output)
    return target, [doc for doc in yaml.safe_load_all(output) if doc]


def objects(overlay, kind):
    return {doc["metadata"]["name"]: doc for doc in built(overlay)[1] if doc["kind"] == kind}


def pod_templates(overlay):
    """{"Kind/name": pod spec} of every workload of an overlay, CronJobs included."""
    pods = {}
    for kind in ("Deployment", "StatefulSet", "Job"):
        for name, workload in objects(overlay, kind).items():
            pods[f"{kind}/{name}"] = workload["spec"]["template"]["spec"]
    for name, cronjob in objects(overlay, "CronJob").items():
        pods[f"CronJob/{name}"] = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return pods


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_builds_and_validates_strictly_against_kubernetes_1_30(overlay):
    path, docs = built(overlay)
    result = subprocess.run([tool("kubernetes-validate"), "-k", "1.30.0", "--strict", "--quiet", path],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    kinds = {doc["kind"] for doc in docs}
    assert {"Namespace", "ConfigMap", "Secret", "Deployment", "StatefulSet", "Service", "Ingress",
            "NetworkPolicy", "PodDisruptionBudget", "HorizontalPodAutoscaler", "Job"} <= kinds
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "lifytp", doc["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_process_deployment_is_built_to_survive_restarts_and_rollouts(overlay):
    deployments = objects(overlay, "Deployment")
    for name, port in PROCESSES.items():
        deployment = deployments[name]
        spec = deployment["spec"]
        pod = spec["template"]["spec"]
        (container,) = pod["containers"]
        assert "replicas" not in spec  # the autoscaler owns it
        assert spec["strategy"]["type"] == "RollingUpdate"
        assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
        assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
        assert container["livenessProbe"]["httpGet"]["path"] == "/health"
        assert container["startupProbe"]["httpGet"]["path"] == "/health"
        assert {"name": "WEB_SERVER_ADDRESS", "value": f"0.0.0.0:{port}"} in container["env"]
        pause = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
        # Past the pause, Nameko has longer than the slowest request (RPC is bounded at 5 s).
        assert pod["terminationGracePeriodSeconds"] >= pause + 30
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(resources["limits"])
        # The local overlay fits a laptop or CI node; production asks what the benchmark measured.
        assert resources["requests"]["cpu"] == ("100m" if overlay == "local" else CPU_REQUESTS[name])
        security = container["securityContext"]
        assert pod["securityContext"]["runAsNonRoot"] and security["runAsNonRoot"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"])
        spread = pod["topologySpreadConstraints"][0]
        assert spread["topologyKey"] == "kubernetes.io/hostname"
        assert spread["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"]
        assert objects(overlay, "PodDisruptionBudget")[name]["spec"]["minAvailable"] == 1
        hpa = objects(overlay, "HorizontalPodAutoscaler")[name]["spec"]
        assert hpa["scaleTargetRef"]["name"] == name and hpa["minReplicas"] == 2
        image = container["image"]
        if overlay == "production":
            assert image.startswith("ghcr.io/") and image.split("/")[-1].startswith(f"lifytp-{name}:")
            assert container["imagePullPolicy"] == "Always"
            assert pod["imagePullSecrets"] == [{"name": "ghcr-pull"}]  # a private GHCR
        else:
            assert image == f"lifytp-{name}:dev"


def millicores(quantity):
    return int(quantity[:-1]) if quantity.endswith("m") else int(float(quantity) * 1000)


def test_the_local_overlay_fits_one_4_core_node_beside_kinds_own_pods():
    """The kind job runs on GitHub's 4-CPU runner: a pod whose request does not
    fit stays Pending and the rollout never ends. Counted: every process at
    its autoscaler's minimum, one surge pod of a rolling update, the backing
    services, the Jobs and the backup; beside kind's control plane, CNI,
    CoreDNS and the ingress controller (their requests: 1,050m)."""
    requested, surge = 0, 0
    for doc in built("local")[1]:
        if doc["kind"] not in ("Deployment", "StatefulSet", "Job", "CronJob"):
            continue
        spec = doc["spec"]["jobTemplate"]["spec"] if doc["kind"] == "CronJob" else doc["spec"]
        pod = spec["template"]["spec"]
        cpu = sum(millicores(c["resources"]["requests"]["cpu"]) for c in pod["containers"])
        hpa = objects("local", "HorizontalPodAutoscaler").get(doc["metadata"]["name"])
        requested += cpu * (hpa["spec"]["minReplicas"] if hpa else spec.get("replicas", 1))
        surge = max(surge, cpu if hpa else 0)
    assert requested + surge <= 4000 - 1050, (requested, surge)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_workload_an_autoscaler_owns_sets_its_replica_count(overlay):
    """`kubectl apply` of a count would scale the workload back to it every time."""
    autoscaled = {(hpa["spec"]["scaleTargetRef"]["kind"], hpa["spec"]["scaleTargetRef"]["name"])
                  for hpa in objects(overlay, "HorizontalPodAutoscaler").values()}
    assert autoscaled >= {("Deployment", name) for name in PROCESSES}
    for kind, name in autoscaled:
        assert "replicas" not in objects(overlay, kind)[name]["spec"], name


def _as_the_shape(name, port, rendered):
    """A process's rendered objects with its name and port put back to the
    component's placeholders, and what its kustomization patches undone."""
    text = re.sub(rf"\b{port}\b", "0", re.sub(rf"\b{name}\b", "process", json.dumps(rendered)))
    text = re.sub(r"\b((?:process-secrets|jwt-signing|jwt-public))-[a-z0-9]{10}\b", r"\1", text)  # content hashes
    deployment, service, budget, autoscaler = json.loads(text)
    deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "0"  # its value
    if name == "auth":  # it alone mounts the signing key
        (jwt,) = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "jwt"]
        assert jwt["secret"]["secretName"] == "jwt-signing"
        jwt["secret"]["secretName"] = "jwt-public"
    if name == "realtime":  # Socket.IO sessions stay on their replica
        assert service["spec"].pop("sessionAffinity") == "ClientIP"
        service["spec"].pop("sessionAffinityConfig")
    return deployment, service, budget, autoscaler


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_process_is_the_one_shape_with_its_name_port_and_the_patches_it_names(overlay):
    """deploy/components/process is each process's Deployment, Service, budget
    and autoscaler; deploy/base/<process>/ gives only its values and patches."""
    shapes = {}
    for name, port in PROCESSES.items():
        with open(os.path.join(ROOT, "deploy", "base", name, "kustomization.yaml")) as handle:
            kustomization = yaml.safe_load(handle)
        assert os.listdir(os.path.join(ROOT, "deploy", "base", name)) == ["kustomization.yaml"], name
        assert kustomization["components"] == ["../../components/process"] and "resources" not in kustomization
        (values,) = kustomization["configMapGenerator"]
        assert values["literals"] == [f"name={name}", f"port={port}", f"cpu={CPU_REQUESTS[name]}"], name
        assert bool(kustomization.get("patches")) == (name in ("auth", "realtime")), name
        rendered = [objects(overlay, kind)[name] for kind in
                    ("Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler")]
        shapes[name] = _as_the_shape(name, port, rendered)
    for name, shape in shapes.items():
        assert shape == shapes["auth"], f"{name} differs from auth beyond its name, port and patches"
    # The values stay in the build: no ConfigMap of them is applied.
    assert not [name for name in objects(overlay, "ConfigMap") if name.endswith("-values")]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_auth_gets_the_private_key_and_every_reference_resolves(overlay):
    docs = built(overlay)[1]
    secrets = objects(overlay, "Secret")
    configmaps = objects(overlay, "ConfigMap")
    for name, deployment in objects(overlay, "Deployment").items():
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"].get("volumes", [])}
        if name in PROCESSES:
            jwt = secrets[volumes["jwt"]["secret"]["secretName"]]
            assert ("jwt-private.pem" in jwt["data"]) == (name == "auth"), name
            assert "jwt-public.pem" in jwt["data"]
    text = yaml.safe_dump_all(docs)
    for referenced in re.findall(r"(?:secretName|name): (\S+-secrets-\w+|jwt-\w+-\w+|rabbitmq-definitions-\w+)", text):
        assert referenced in secrets, referenced
    for referenced in re.findall(r"name: (rabbitmq-config-\w+|lifytp-config)\b", text):
        assert referenced in configmaps, referenced
    # No plain-text secret in a ConfigMap.
    for configmap in configmaps.values():
        for key, value in configmap.get("data", {}).items():
            assert "PASSWORD" not in key and "://" not in value.split("@")[0] or "@" not in value, key


def dockerfile_entrypoints():
    """{stage: ENTRYPOINT} of the Dockerfile's stages that set one."""
    entrypoints, stage = {}, None
    with open(os.path.join(ROOT, "Dockerfile")) as handle:
        for line in handle:
            if match := re.match(r"FROM \S+ AS (\S+)", line):
                stage = match.group(1)
            elif line.startswith("ENTRYPOINT "):
                entrypoints[stage] = json.loads(line.removeprefix("ENTRYPOINT "))
    return entrypoints


def test_the_auth_process_runs_the_api_document_beside_auth_everywhere_it_is_deployed():
    nameko_run = ["/opt/venv/bin/nameko", "run", "--config", "/app/config.yaml"]
    modules = {"auth": ["services.auth.service", "services.api"], "events": ["services.events.service"],
               "messages": ["services.messages.service"], "realtime": ["realtime.service"]}
    entrypoints = dockerfile_entrypoints()
    for name in PROCESSES:
        assert entrypoints[name] == nameko_run + modules[name], name
    # Kubernetes and compose run each image's own command, unchanged.
    for overlay in OVERLAYS:
        for name in PROCESSES:
            (container,) = objects(overlay, "Deployment")[name]["spec"]["template"]["spec"]["containers"]
            assert "command" not in container and "args" not in container, (overlay, name)
    services = compose_config()["services"]
    for name in PROCESSES:
        assert services[name]["build"]["target"] == name
        assert not services[name].get("entrypoint") and not services[name].get("command"), name
    # What `nameko run` finds in those modules: services.api holds no service
    # class but its own, so auth's process runs auth once, beside auth's mail
    # worker (a service class of its own in auth's module).
    found = run([sys.executable, "-W", "ignore", "-c",
                 "import sys; from nameko.cli.run import import_service; "
                 "print(' '.join(s.__name__ for m in sys.argv[1:] for s in import_service(m)))", *modules["auth"]],
                cwd=ROOT).stdout.split()
    assert found == ["AuthMailWorker", "AuthService", "ApiDocsService"]


def _secret_holds_private_key(secret):
    return any(key.endswith("private.pem") or b"PRIVATE KEY" in base64.b64decode(value)
               for key, value in secret.get("data", {}).items())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_workload_but_auth_can_read_the_signing_key(overlay):
    """Every Deployment, StatefulSet, Job and CronJob, by volume, projected
    volume, env or envFrom: only auth's pods reach a Secret with the private key."""
    secrets = objects(overlay, "Secret")
    signing = {name for name, secret in secrets.items() if _secret_holds_private_key(secret)}
    assert signing, "the private key is in no Secret"
    reached = {workload: secrets_of(pod) & signing for workload, pod in pod_templates(overlay).items()}
    assert "CronJob/postgres-backup" in reached
    assert {workload for workload, names in reached.items() if names} == {"Deployment/auth"}, reached


def secrets_of(pod):
    """The names of the Secrets a pod spec reads, by volume, projected volume, env or envFrom."""
    names = set()
    for volume in pod.get("volumes", []):
        names.add(volume.get("secret", {}).get("secretName"))
        for source in volume.get("projected", {}).get("sources", []):
            names.add(source.get("secret", {}).get("name"))
    for container in pod["containers"] + pod.get("initContainers", []):
        names.update(item.get("secretRef", {}).get("name") for item in container.get("envFrom", []))
        names.update(item.get("valueFrom", {}).get("secretKeyRef", {}).get("name")
                     for item in container.get("env", []))
    return names - {None}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_stateful_backing_services_keep_their_data(overlay):
    statefulsets = objects(overlay, "StatefulSet")
    for name in ("postgres", "rabbitmq", "minio"):
        claims = statefulsets[name]["spec"]["volumeClaimTemplates"]
        assert claims and claims[0]["spec"]["accessModes"] == ["ReadWriteOnce"], name
    assert "redis" in objects(overlay, "Deployment")
    services = objects(overlay, "Service")
    for name in ("postgres", "rabbitmq", "redis", "minio", *PROCESSES):
        assert name in services
    rabbitmq = statefulsets["rabbitmq"]["spec"]["template"]["spec"]
    mounts = {m["mountPath"] for m in rabbitmq["containers"][0]["volumeMounts"]}
    assert {"/etc/rabbitmq/rabbitmq.conf", "/etc/rabbitmq/enabled_plugins", "/etc/rabbitmq/definitions"} <= mounts
    with open(os.path.join(ROOT, "rabbitmq", "rabbitmq.conf")) as handle:
        assert "definitions.local.path = /etc/rabbitmq/definitions/definitions.json" in handle.read()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ingress_routes_every_api_prefix_and_pins_socketio_sessions(overlay):
    ingresses = objects(overlay, "Ingress")
    routes = {}
    for ingress in ingresses.values():
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                routes[path["path"]] = (path["backend"]["service"]["name"], ingress["metadata"])
    for service, prefixes in ROUTES.items():
        for prefix in prefixes:
            assert routes[prefix][0] == service, prefix
    socketio = routes["/socket.io"][1]["annotations"]
    assert socketio["nginx.ingress.kubernetes.io/affinity"] == "cookie"
    assert int(socketio["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    # Only Socket.IO is pinned; the rest of the API balances freely.
    assert "nginx.ingress.kubernetes.io/affinity" not in routes["/auth"][1].get("annotations", {})
    assert objects(overlay, "Service")["realtime"]["spec"]["sessionAffinity"] == "ClientIP"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_deny_by_default_and_allow_only_what_each_process_needs(overlay):
    policies = objects(overlay, "NetworkPolicy")
    default = policies["default-deny"]["spec"]
    assert default["podSelector"] == {} and set(default["policyTypes"]) == {"Ingress", "Egress"}

    def reaches(name):
        targets = set()
        for rule in policies[name]["spec"].get("egress", []):
            for peer in rule.get("to", []):
                if "podSelector" in peer:
                    targets.add(peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"])
        return targets

    assert reaches("auth") == {"postgres", "rabbitmq", "redis"}
    assert reaches("events") == {"postgres", "rabbitmq", "redis", "minio"}
    assert reaches("messages") == {"postgres", "rabbitmq", "redis"}
    assert reaches("realtime") == {"rabbitmq", "redis"}
    assert reaches("migrations") == {"postgres"}
    assert reaches("postgres-backup") == {"postgres"}
    for backing, clients in {"postgres": {"auth", "events", "messages", "migrations", "postgres-backup"},
                             "rabbitmq": set(PROCESSES), "redis": set(PROCESSES), "minio": {"events", "minio-bucket"}
                             }.items():
        peers = [peer for rule in policies[backing]["spec"]["ingress"] for peer in rule["from"]]
        allowed = {peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for peer in peers
                   if "podSelector" in peer}
        assert allowed == clients, backing
        namespaces = [peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for peer in peers
                      if "namespaceSelector" in peer]
        # Phones load media through the ingress controller (the media Ingress), Prometheus scrapes
        # RabbitMQ's metrics port; no other namespace reaches a backing service.
        assert namespaces == {"minio": ["ingress-nginx"], "rabbitmq": ["monitoring"]}.get(backing, []), backing
    (scrape,) = [rule for rule in policies["rabbitmq"]["spec"]["ingress"]
                 if any("namespaceSelector" in peer for peer in rule["from"])]
    assert scrape["ports"] == [{"protocol": "TCP", "port": 15692}]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_saturated_replica_leaves_the_service_long_before_liveness_would_restart_it(overlay):
    def gives_up_after(probe):
        return probe["periodSeconds"] * probe["failureThreshold"]

    deployments = objects(overlay, "Deployment")
    for name in PROCESSES:
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        # /ready waits for a worker and /health does not: a busy replica stops
        # getting requests, and only one whose event loop is stuck is restarted.
        assert gives_up_after(container["readinessProbe"]) < gives_up_after(container["livenessProbe"]), name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_auth_hashes_no_more_passwords_at_once_than_its_cpu_limit_has_cores(overlay):
    config = objects(overlay, "ConfigMap")["lifytp-config"]["data"]
    (container,) = objects(overlay, "Deployment")["auth"]["spec"]["template"]["spec"]["containers"]
    limit = str(container["resources"]["limits"]["cpu"])
    cores = int(limit[:-1]) / 1000 if limit.endswith("m") else float(limit)
    assert 1 <= int(config["BCRYPT_CONCURRENCY"]) <= max(1, cores)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_media_urls_are_signed_for_the_public_host_that_routes_the_bucket_to_the_store(overlay):
    config = objects(overlay, "ConfigMap")["lifytp-config"]["data"]
    media = objects(overlay, "Ingress")["media"]["spec"]
    (rule,) = media["rules"]
    (path,) = rule["http"]["paths"]
    assert path["path"] == "/{}/".format(config["S3_BUCKET"]) and path["pathType"] == "Prefix"
    assert path["backend"]["service"] == {"name": "minio", "port": {"name": "s3"}}
    api_host = objects(overlay, "Ingress")["api"]["spec"]["rules"][0]["host"]
    assert rule["host"] == api_host
    scheme = "https" if media.get("tls") else "http"
    assert config["S3_PUBLIC_ENDPOINT_URL"] == f"{scheme}://{api_host}"
    assert objects(overlay, "Service")["minio"]["spec"]["ports"][0]["name"] == "s3"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_migrations_job_runs_the_migrations_image_before_the_rollout(overlay):
    job = objects(overlay, "Job")["migrations"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert "lifytp-migrations" in container["image"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "setup"
    if overlay == "production":
        assert job["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "ghcr-pull"}]
    with open(os.path.join(ROOT, "deploy", "apply.sh")) as handle:
        script = handle.read()
    # apply.sh applies everything but the processes, waits for the Job, then rolls the processes.
    assert script.index("component!=app") < script.index("job/migrations") < script.rindex('apply -f "$manifests"')


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_auth_reads_smtp_url_from_its_secret_and_may_reach_an_smtp_server(overlay):
    (container,) = objects(overlay, "Deployment")["auth"]["spec"]["template"]["spec"]["containers"]
    secret_name = next(ref["secretRef"]["name"] for ref in container["envFrom"] if "secretRef" in ref)
    secret = objects(overlay, "Secret")[secret_name]
    assert "SMTP_URL" in secret["data"]
    config = objects(overlay, "ConfigMap")["lifytp-config"]["data"]
    assert "SMTP_URL" not in config and config["MAIL_FROM"] and config["APP_LINK_BASE_URL"].startswith("https://")
    smtp_rules = [rule for rule in objects(overlay, "NetworkPolicy")["auth"]["spec"]["egress"]
                  if any("ipBlock" in peer for peer in rule["to"])]
    assert {port["port"] for rule in smtp_rules for port in rule["ports"]} == {25, 465, 587}


def test_make_secrets_writes_matching_rabbitmq_hashes_and_an_ed25519_pair():
    secrets_dir = os.path.join(scratch_copy(), "deploy", "overlays", "local", "secrets")
    with open(os.path.join(secrets_dir, "rabbitmq-definitions.json")) as handle:
        users = {u["name"]: u["password_hash"] for u in json.load(handle)["users"]}
    with open(os.path.join(secrets_dir, "auth.env")) as handle:
        env = dict(line.strip().split("=", 1) for line in handle if "=" in line)
    password = re.match(r"amqp://lifytp-auth:([^@]+)@", env["AMQP_URI"]).group(1)
    raw = base64.b64decode(users["lifytp-auth"])
    assert hashlib.sha256(raw[:4] + password.encode()).digest() == raw[4:]
    # The Secret's definitions are rabbitmq/definitions.json but for the hashes.
    with open(os.path.join(secrets_dir, "rabbitmq-definitions.json")) as handle:
        assert _without_hashes(json.load(handle)) == _without_hashes(definitions())
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    with open(os.path.join(secrets_dir, "jwt-private.pem"), "rb") as handle:
        assert isinstance(serialization.load_pem_private_key(handle.read(), None), Ed25519PrivateKey)
    assert oct(os.stat(os.path.join(secrets_dir, "jwt-private.pem")).st_mode & 0o777) == "0o600"


def test_no_real_secret_is_in_the_repository():
    tracked = subprocess.run(["git", "ls-files", "deploy", "rabbitmq", ".env*"], cwd=ROOT, capture_output=True,
                             text=True).stdout.split()
    for path in tracked:
        if "/secrets/" in path:
            assert path.endswith(".example"), path
        assert not path.endswith((".pem", ".env")), path
    for path in glob.glob(os.path.join(ROOT, "deploy", "overlays", "*", "secrets", "*.example")):
        with open(path) as handle:
            content = handle.read()
        if path.endswith(".env.example"):
            for line in content.splitlines():
                key = line.split("=", 1)[0]
                assert "CHANGE-ME" in line or not re.search("PASSWORD|SECRET|_URL|_URI", key), line
        if path.endswith(".pem.example"):
            assert "CHANGE-ME" in content


# ---- RabbitMQ definitions ---------------------------------------------------

def definitions():
    with open(os.path.join(ROOT, "rabbitmq", "definitions.json")) as handle:
        return json.load(handle)


def _without_hashes(doc):
    return dict(doc, users=[{k: v for k, v in user.items() if k != "password_hash"} for user in doc["users"]])


def test_the_rabbitmq_definitions_are_stored_once():
    """rabbitmq/definitions.json is the one copy in the repository: compose
    mounts it, deploy/make-secrets.py writes each overlay's Secret from it."""
    source = _without_hashes(definitions())
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True).stdout.split()
    copies = []
    for path in listed:
        if path == "rabbitmq/definitions.json" or ".json" not in os.path.basename(path):
            continue
        try:
            with open(os.path.join(ROOT, path)) as handle:
                doc = json.load(handle)
        except (OSError, ValueError):
            continue
        users = doc.get("users") if isinstance(doc, dict) else None
        if isinstance(users, list) and all(isinstance(u, dict) for u in users) and _without_hashes(doc) == source:
            copies.append(path)
    assert not copies


def event_queues(process):
    """The event queues Nameko declares for one process, read off the handlers
    of its service classes (a process may run several: auth's mail worker)."""
    from tests.unit.test_realtime_reliability import event_handlers, service_classes

    return sorted(
        f"evt-{handler.source_service}-{handler.event_type}--{qualified_name}"
        for service_class in service_classes() if service_class.__module__.split(".")[-2] == process
        for qualified_name, handler in event_handlers(service_class))


def names_of(service):
    """What Nameko configures, writes and reads for one service."""
    own = [f"rpc-{service}", f"rpc.reply-{service}-5c1a9e3e-54c1-4d3b-9d0e-0a6f8a0f2b11"]
    queues = event_queues(service)
    sources = sorted({f"{queue[4:].split('-', 1)[0]}.events" for queue in queues})
    return {
        "configure": ["nameko-rpc", f"{service}.events", *own, *queues, *sources],
        "write": ["nameko-rpc", f"{service}.events", *own, *queues],
        "read": ["nameko-rpc", *own, *queues, *sources],
    }


@pytest.mark.parametrize("service", list(PROCESSES))
def test_rabbitmq_user_may_do_what_its_service_needs_and_nothing_of_the_others(service):
    doc = definitions()
    (permission,) = [p for p in doc["permissions"] if p["user"] == "lifytp-" + service]
    assert permission["vhost"] == "lifytp"
    for kind, names in names_of(service).items():
        for name in names:
            assert re.search(permission[kind], name), (kind, name)
    for other in PROCESSES:
        if other == service:
            continue
        for name in (f"rpc-{other}", f"rpc.reply-{other}-5c1a9e3e", f"evt-auth-user_registered--{other}.handle"):
            for kind in ("configure", "write", "read"):
                assert not re.search(permission[kind], name), (kind, name)
        # Another service's events: never published by this one.
        assert not re.search(permission["write"], f"{other}.events")
    user = next(u for u in doc["users"] if u["name"] == "lifytp-" + service)
    assert user["tags"] == [] and user["hashing_algorithm"] == "rabbit_password_hashing_sha256"


def test_rabbitmq_policies_expire_reply_queues_and_dead_letter_event_queues():
    doc = definitions()
    assert [v["name"] for v in doc["vhosts"]] == ["lifytp"]
    policies = {p["name"]: p for p in doc["policies"]}
    reply = policies["rpc-reply-queues"]
    assert re.search(reply["pattern"], "rpc.reply-auth-5c1a9e3e") and not re.search(reply["pattern"], "rpc-auth")
    assert 0 < reply["definition"]["expires"] <= 600000
    events = policies["event-queues"]
    assert re.search(events["pattern"], "evt-auth-user_registered--events.on_user")
    dlx = events["definition"]["dead-letter-exchange"]
    exchanges = {e["name"] for e in doc["exchanges"]}
    assert dlx in exchanges
    assert any(b["source"] == dlx for b in doc["bindings"])
    with open(os.path.join(ROOT, "rabbitmq", "enabled_plugins")) as handle:
        assert "rabbitmq_management" in handle.read()


# ---- monitoring examples ----------------------------------------------------

def test_the_moderation_alert_fires_at_24_hours_on_metrics_auth_exports():
    from services.shared.observability import metrics

    with open(os.path.join(ROOT, "deploy", "monitoring", "prometheusrule.example.yaml")) as handle:
        rule = yaml.safe_load(handle)
    assert rule["kind"] == "PrometheusRule"
    alerts = {entry["alert"]: entry for group in rule["spec"]["groups"] for entry in group["rules"]}
    overdue = alerts["LifyTPReportOverdue"]
    assert overdue["expr"] == "max(lifytp_reports_oldest_open_age_seconds) > 24 * 3600"
    assert overdue["labels"]["severity"] == "critical"
    exported = {metrics.REPORTS_OPEN._name, metrics.REPORTS_OLDEST_OPEN_AGE._name}
    named = set(re.findall(r"lifytp_[a-z_]+", " ".join(entry["expr"] for entry in alerts.values())))
    assert named and named <= exported


# ---- linters and compose ----------------------------------------------------

def test_yamllint():
    run([tool("yamllint"), "--strict", "-c", os.path.join(ROOT, "deploy", "yamllint.yaml"), *YAML_PATHS], cwd=ROOT)


def test_hadolint_on_every_dockerfile():
    dockerfiles = [p for p in glob.glob(os.path.join(ROOT, "**", "Dockerfile*"), recursive=True)
                   if "/.venv/" not in p and "/node_modules/" not in p]
    assert dockerfiles
    run([tool("hadolint"), "--failure-threshold", "info", *dockerfiles])


def workflow(name):
    with open(os.path.join(ROOT, ".github", "workflows", name)) as handle:
        return yaml.safe_load(handle)


def test_actionlint_with_shellcheck_on_the_workflows():
    workflows = sorted(glob.glob(os.path.join(ROOT, ".github", "workflows", "*.yml")))
    assert {os.path.basename(w) for w in workflows} >= {"ci.yml", "cd.yml"}
    directory = ROOT
    if subprocess.run(["git", "rev-parse"], cwd=ROOT, capture_output=True).returncode != 0:
        directory = tempfile.mkdtemp(prefix="lifytp-actionlint-")  # actionlint wants a repository
        shutil.copytree(os.path.join(ROOT, ".github"), os.path.join(directory, ".github"))
        subprocess.run(["git", "init", "-q"], cwd=directory, check=True)
    # -shellcheck names the binary, so every `run:` is checked or this fails.
    run([tool("actionlint"), "-no-color", "-shellcheck", tool("shellcheck")], cwd=directory)


def test_ci_runs_the_suite_as_ci_does_and_cd_deploys_only_what_ci_passed():
    ci, cd = workflow("ci.yml"), workflow("cd.yml")
    assert ci[True]["push"]["tags"] == ["v*"] and "tags-ignore" not in ci[True]["push"]
    steps = [step.get("run", "") for step in ci["jobs"]["test"]["steps"]]
    assert "sudo deploy/local/github-runner.sh" in steps
    assert any(step.endswith(" make test") for step in steps)
    assert any(step.get("run") == "make typecheck" for step in ci["jobs"]["typecheck"]["steps"])
    kind = [step.get("run", "") for step in ci["jobs"]["kind"]["steps"]]
    for script in ("deploy/kind/up.sh", "deploy/checks/smoke.py", "deploy/checks/demos.py"):
        assert any(script in step for step in kind), script
        assert os.access(os.path.join(ROOT, script), os.X_OK), script
    assert cd[True] == {"workflow_run": {"workflows": ["CI"], "types": ["completed"]}}
    assert "conclusion == 'success'" in cd["jobs"]["release"]["if"]
    for job in cd["jobs"].values():
        (checkout,) = [step for step in job["steps"] if step.get("uses", "").startswith("actions/checkout")]
        assert checkout["with"]["ref"] == "${{ github.event.workflow_run.head_sha }}"
    assert "deploy/apply.sh deploy/overlays/production" in json.dumps(cd)


def test_shellcheck_on_every_script():
    scripts = sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "**", "*.sh"), recursive=True)
                     if "/.venv/" not in p and "/node_modules/" not in p)
    assert "deploy/kind/up.sh" in scripts and "deploy/apply.sh" in scripts
    run([tool("shellcheck"), "-x", *scripts], cwd=ROOT)


def compose_config():
    result = run([tool("docker-compose"), "--env-file", ".env.example", "-f", "docker-compose.yml",
                  "config", "--format", "json"], cwd=ROOT)
    return json.loads(result.stdout)


def test_docker_compose_config_is_valid_and_health_gated():
    config = compose_config()
    services = config["services"]
    assert set(services) >= {"postgres", "rabbitmq", "redis", "minio", "migrations", "edge", *PROCESSES}
    for name in ("postgres", "rabbitmq", "redis", "minio", "edge", *PROCESSES):
        assert "healthcheck" in services[name] or services[name].get("build"), name
    for name in PROCESSES:
        depends = services[name]["depends_on"]
        assert depends["rabbitmq"]["condition"] == "service_healthy"
        if name != "realtime":
            assert depends["migrations"]["condition"] == "service_completed_successfully"
        assert services[name]["read_only"] is True
        assert services[name]["build"]["target"] == name
    assert all(d["condition"] == "service_healthy" for d in services["edge"]["depends_on"].values())
    assert set(config["volumes"]) >= {"postgres-data", "rabbitmq-data", "minio-data"}
    mounts = {v["target"]: v for v in services["rabbitmq"]["volumes"]}
    assert "/etc/rabbitmq/definitions/definitions.json" in mounts


def _mount_of(service, path):
    """The volume mount of a compose service that holds `path`, or None."""
    for volume in service.get("volumes", []):
        if path.startswith(volume["target"].rstrip("/") + "/"):
            return volume
    return None


def test_in_compose_only_auth_mounts_the_private_key():
    services = compose_config()["services"]
    keys = services["keys"]["environment"]
    signing = _mount_of(services["keys"], keys["JWT_PRIVATE_KEY_PATH"])
    public = _mount_of(services["keys"], keys["JWT_PUBLIC_KEY_PATH"])
    # `keys` writes the pair into two named volumes, never one.
    assert signing["type"] == public["type"] == "volume" and signing["source"] != public["source"]
    for name, service in services.items():
        mounts_signing = any(volume.get("source") == signing["source"] for volume in service.get("volumes", []))
        names_private = "JWT_PRIVATE_KEY_PATH" in (service.get("environment") or {})
        assert mounts_signing == names_private == (name in ("keys", "auth")), name
        # Nor may a key reach a process from the working tree.
        assert not any(str(volume.get("source", "")).endswith(".pem") for volume in service.get("volumes", [])), name
    for name in PROCESSES:
        env = services[name]["environment"]
        mount = _mount_of(services[name], env["JWT_PUBLIC_KEY_PATH"])
        assert mount and mount["source"] == public["source"] and mount["read_only"] is True, name
    auth = services["auth"]
    mount = _mount_of(auth, auth["environment"]["JWT_PRIVATE_KEY_PATH"])
    assert mount["source"] == signing["source"] and mount["read_only"] is True
    # A fresh named volume takes the owner of its mount point in the image:
    # both must exist there, owned by the unprivileged user `keys` runs as.
    with open(os.path.join(ROOT, "Dockerfile")) as handle:
        dockerfile = handle.read()
    for volume in (signing, public):
        assert re.search(r"install -d -o lifytp -g lifytp -m 0[0-7]{3} " + re.escape(volume["target"]) + r"\b",
                         dockerfile), volume["target"]


def test_docker_compose_file_holds_no_secret():
    with open(os.path.join(ROOT, "docker-compose.yml")) as handle:
        text = handle.read()
    for line in text.splitlines():
        if re.search(r"(PASSWORD|SECRET)[A-Z_]*:\s*\S", line) or re.search(r"://[^:\s]+:[^@$\s]+@", line):
            assert "${" in line, line


def test_compose_edge_routes_like_the_ingress():
    with open(os.path.join(ROOT, "deploy", "edge", "nginx.conf")) as handle:
        conf = handle.read()
    locations = re.findall(r"location ~ (\S+) \{ proxy_pass http://(\w+); \}", conf)
    assert locations
    for service, prefixes in ROUTES.items():
        if service == "realtime":
            continue
        for prefix in prefixes:
            for path in (prefix, prefix + "/x"):
                matched = [upstream for pattern, upstream in locations if re.match(pattern, path)]
                assert matched[:1] == [service], path
    assert re.search(r"location /socket\.io/ \{[^}]*proxy_pass http://realtime;[^}]*Upgrade \$http_upgrade", conf)
    # Media: the bucket's path to the store, reads only, with the Host the URL was signed for.
    bucket = compose_config()["services"]["events"]["environment"]["S3_BUCKET"]
    media = re.search(r"location /" + re.escape(bucket) + r"/ \{(.*?)\n    \}", conf, re.S)
    assert media, bucket
    assert "limit_except GET { deny all; }" in media[1] and "proxy_pass http://minio:9000;" in media[1]
    assert "proxy_set_header Host $http_host;" in media[1]
    assert "ip_hash" in conf
    compose_ports = compose_config()["services"]
    for service, port in PROCESSES.items():
        assert f"server {service}:{port};" in conf
        assert compose_ports[service]["build"]["target"] == service


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_meets_the_restricted_pod_security_standard(overlay):
    namespace = objects(overlay, "Namespace")["lifytp"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    pods = pod_templates(overlay)
    assert "CronJob/postgres-backup" in pods
    for name, pod in pods.items():
        assert_restricted(name, pod)


def assert_restricted(name, pod):
    assert pod["securityContext"]["runAsNonRoot"] is True, name
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
    assert pod["automountServiceAccountToken"] is False, name
    for container in pod["containers"] + pod.get("initContainers", []):
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["capabilities"]["drop"] == ["ALL"], name
        assert not security.get("capabilities", {}).get("add"), name
        assert "resources" in container and container["resources"]["limits"], name


# ---- PostgreSQL: shared memory, backup, tools -------------------------------

POSTGRES_SCRIPTS = ("backup.sh", "restore.sh", "rotate-password.sh")


def memory_bytes(quantity):
    for suffix, factor in {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}.items():
        if quantity.endswith(suffix):
            return int(quantity.removesuffix(suffix)) * factor
    return int(quantity)


def postgres_server(overlay):
    pod = objects(overlay, "StatefulSet")["postgres"]["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    return pod, container


def backup_pod(overlay):
    pod = objects(overlay, "CronJob")["postgres-backup"]["spec"]["jobTemplate"]["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    return pod, container


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_postgres_has_a_dev_shm_in_memory_within_its_memory_limit(overlay):
    pod, container = postgres_server(overlay)
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/dev/shm"]
    (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == mount["name"]]
    assert volume["emptyDir"]["medium"] == "Memory"
    # Past the container runtime's 64 MiB, and leaving the server most of its
    # memory limit, which the volume's pages count against.
    size = memory_bytes(volume["emptyDir"]["sizeLimit"])
    assert 64 * 2**20 < size <= memory_bytes(container["resources"]["limits"]["memory"]) // 2


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_postgres_backup_runs_the_repository_script_nightly_into_its_own_volume(overlay):
    spec = objects(overlay, "CronJob")["postgres-backup"]["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert len(spec["schedule"].split()) == 5 and spec["timeZone"] == "Etc/UTC"
    job = spec["jobTemplate"]["spec"]
    assert job["activeDeadlineSeconds"] > 0 and job["backoffLimit"] >= 1
    pod, container = backup_pod(overlay)
    assert pod["spec"]["restartPolicy"] == "Never"
    server_pod, server = postgres_server(overlay)
    # The server's image: pg_dump of the server's major version.
    assert container["image"] == server["image"]
    # backup.sh of deploy/postgres, byte for byte, from the ConfigMap, run as it is.
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    (command,) = container["command"]
    assert "args" not in container and os.path.basename(command) == "backup.sh"
    scripts = volumes[mounts[os.path.dirname(command)]["name"]]["configMap"]
    assert scripts["defaultMode"] & 0o555 == 0o555
    configmap = objects(overlay, "ConfigMap")[scripts["name"]]
    assert set(configmap["data"]) == set(POSTGRES_SCRIPTS)
    for name in POSTGRES_SCRIPTS:
        with open(os.path.join(ROOT, "deploy", "postgres", name)) as handle:
            assert configmap["data"][name] == handle.read(), name
    # The dumps go to a volume of their own, of which the script is told.
    env = {e["name"]: e for e in container["env"]}
    claim = volumes[mounts[env["BACKUP_DIR"]["value"]]["name"]]["persistentVolumeClaim"]["claimName"]
    assert objects(overlay, "PersistentVolumeClaim")[claim]["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert int(env["BACKUP_KEEP"]["value"]) >= 2
    # The database: its Service, the role and database the image created, the password of its Secret.
    server_env = {e["name"]: e.get("value") for e in server["env"]}
    assert objects(overlay, "Service")[env["PGHOST"]["value"]]["spec"]["ports"][0]["port"] == 5432
    assert env["PGUSER"]["value"] == server_env["POSTGRES_USER"]
    assert env["PGDATABASE"]["value"] == server_env["POSTGRES_DB"]
    password = env["PGPASSWORD"]["valueFrom"]["secretKeyRef"]
    assert {"secretRef": {"name": password["name"]}} in server["envFrom"]
    assert password["key"] == "POSTGRES_PASSWORD"
    assert password["key"] in objects(overlay, "Secret")[password["name"]]["data"]
    # The image's postgres user, owning the volume through fsGroup; read-only root, a /tmp of its own.
    security = pod["spec"]["securityContext"]
    assert security["runAsUser"] == security["fsGroup"] == server_pod["spec"]["securityContext"]["runAsUser"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["runAsNonRoot"] is True
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(resources["limits"])


def _selects(policy, labels):
    selector = policy["spec"]["podSelector"]
    assert not selector.get("matchExpressions")
    return all(labels.get(key) == value for key, value in selector.get("matchLabels", {}).items())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_backup_reaches_postgres_on_5432_and_nothing_reaches_it(overlay):
    policies = objects(overlay, "NetworkPolicy")
    labels = backup_pod(overlay)[0]["metadata"]["labels"]
    assert {name for name, policy in policies.items() if _selects(policy, labels)} == {
        "default-deny", "allow-dns", "postgres-backup"}
    own = policies["postgres-backup"]["spec"]
    assert own["egress"] == [{"to": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "postgres"}}}],
                              "ports": [{"protocol": "TCP", "port": 5432}]}]
    assert not own.get("ingress")
    # And postgres admits it, on the port the server listens on.
    server_labels = postgres_server(overlay)[0]["metadata"]["labels"]
    (postgres,) = [policy for name, policy in policies.items()
                   if _selects(policy, server_labels) and name not in ("default-deny", "allow-dns")]
    admitted = [rule["ports"] for rule in postgres["spec"]["ingress"]
                if any("podSelector" in peer and all(labels.get(k) == v for k, v in
                                                     peer["podSelector"]["matchLabels"].items())
                       for peer in rule["from"])]
    assert admitted == [[{"protocol": "TCP", "port": 5432}]]
    assert postgres_server(overlay)[1]["ports"] == [{"name": "postgres", "containerPort": 5432}]


@functools.cache
def tools_pod():
    """deploy/postgres/tools, built."""
    output = run([tool("kubectl"), "kustomize", os.path.join(ROOT, "deploy", "postgres", "tools")]).stdout
    target = os.path.join(scratch_copy(), "postgres-tools.yaml")
    with open(target, "w") as handle:
        handle.write(output)
    (pod,) = [doc for doc in yaml.safe_load_all(output) if doc]
    return target, pod


def test_the_postgres_tools_pod_validates_and_is_the_backup_pod_idle():
    path, pod = tools_pod()
    result = subprocess.run([tool("kubernetes-validate"), "-k", "1.30.0", "--strict", "--quiet", path],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert pod["kind"] == "Pod" and pod["metadata"]["namespace"] == "lifytp"
    spec = pod["spec"]
    assert 0 < spec["activeDeadlineSeconds"] <= 3600 and spec["restartPolicy"] == "Never"
    assert_restricted("Pod/postgres-tools", spec)
    (tools,) = spec["containers"]
    for overlay in OVERLAYS:
        backup, container = backup_pod(overlay)
        # The same label (so the same NetworkPolicy), user, volumes, image and database connection.
        name = "app.kubernetes.io/name"
        assert pod["metadata"]["labels"][name] == backup["metadata"]["labels"][name]
        assert spec["securityContext"] == backup["spec"]["securityContext"]
        assert spec["volumes"] == backup["spec"]["volumes"]
        for key in ("image", "volumeMounts", "securityContext", "resources"):
            assert tools[key] == container[key], key
        env = {e["name"]: e for e in tools["env"]}
        assert env.pop("PSQL_HISTORY")["value"].startswith("/tmp/")
        assert env == {e["name"]: e for e in container["env"] if e["name"] != "BACKUP_KEEP"}
        # Applied on its own, it finds the overlay's objects by their plain names.
        for volume in spec["volumes"]:
            if "configMap" in volume:
                assert volume["configMap"]["name"] in objects(overlay, "ConfigMap")
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in objects(overlay, "PersistentVolumeClaim")
        assert secrets_of(spec) <= set(objects(overlay, "Secret")), overlay


def test_a_postgres_password_rotation_rolls_its_clients_and_not_the_database():
    """What the rotation (deploy/postgres/rotate-password.sh, docs/DEPLOY.md)
    relies on: its new secret files make `kubectl apply` roll auth, events,
    messages and the migrations Job onto a new Secret, while the postgres
    StatefulSet, whose image read the password at its first start only, and
    the backup, which reads it at each run, stay as they are."""
    directory = tempfile.mkdtemp(prefix="lifytp-rotation-")
    try:
        for name in ("deploy", "rabbitmq"):
            shutil.copytree(os.path.join(scratch_copy(), name), os.path.join(directory, name))
        secrets_dir = os.path.join(directory, "deploy", "overlays", "production", "secrets")
        new_password = "n3w-Passw0rd_for.the-rotation"
        run([os.path.join(ROOT, "deploy", "postgres", "rotate-password.sh"), "secrets", secrets_dir, "final"],
            input=new_password + "\n")
        output = run([tool("kubectl"), "kustomize", os.path.join(directory, "deploy", "overlays", "production")]).stdout
    finally:
        shutil.rmtree(directory)
    rotated = {(doc["kind"], doc["metadata"]["name"]): doc for doc in yaml.safe_load_all(output) if doc}
    before = {(doc["kind"], doc["metadata"]["name"]): doc for doc in built("production")[1]}

    secret = rotated["Secret", "postgres-secrets"]
    assert base64.b64decode(secret["data"]["POSTGRES_PASSWORD"]).decode() == new_password
    assert rotated["StatefulSet", "postgres"] == before["StatefulSet", "postgres"]
    assert rotated["CronJob", "postgres-backup"] == before["CronJob", "postgres-backup"]
    for kind, name in (("Deployment", "auth"), ("Deployment", "events"), ("Deployment", "messages"),
                       ("Job", "migrations")):
        (container,) = rotated[kind, name]["spec"]["template"]["spec"]["containers"]
        (reference,) = [item["secretRef"]["name"] for item in container["envFrom"] if "secretRef" in item]
        assert ("Secret", reference) not in before, name  # a Secret of a new name: a new pod template
        urls = {key: base64.b64decode(value).decode() for key, value in rotated["Secret", reference]["data"].items()
                if key.endswith("_DATABASE_URL")}
        assert urls and all(url.startswith(f"postgresql+psycopg2://lifytp:{new_password}@postgres:5432/")
                            for url in urls.values()), name
    assert rotated["Deployment", "realtime"] == before["Deployment", "realtime"]


def test_shellcheck_on_the_postgres_scripts():
    scripts = sorted(glob.glob(os.path.join(ROOT, "deploy", "postgres", "*.sh")))
    assert [os.path.basename(path) for path in scripts] == sorted(POSTGRES_SCRIPTS)
    run([tool("shellcheck"), "--severity=style", *scripts])
