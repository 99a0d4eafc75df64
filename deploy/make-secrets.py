#!/usr/bin/env python3
"""Write the secret files an overlay's kustomization reads, with fresh values.

    python3 deploy/make-secrets.py deploy/overlays/production

Creates, under OVERLAY/secrets/ (ignored by git; `*.example` beside them show
the shape): one env file per process and backing service with random
passwords, an Ed25519 JWT key pair, and `rabbitmq-definitions.json`, which is
rabbitmq/definitions.json with every user's password hash replaced by the
hash of its new password (that file is its one source, so it has no
example). Nothing is ever overwritten: passwords are shared between files,
so it writes all of them or none (delete them all to rotate).

The SMTP server auth sends mail through is not made here: auth.env gets
SMTP_URL from the environment variable of that name (e.g.
`SMTP_URL=smtp+starttls://user:password@smtp.example.com:587`), or a
CHANGE-ME placeholder to edit before applying (until then mail waits).

Needs Python 3 and either the `cryptography` package or the `openssl` command
(for the key pair).
"""
import argparse
import base64
import hashlib
import json
import os
import secrets
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFINITIONS = os.path.join(ROOT, "rabbitmq", "definitions.json")
PROCESSES = ("auth", "events", "messages", "realtime")


def rabbitmq_hash(password):
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password))."""
    salt = os.urandom(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def password():
    return secrets.token_urlsafe(24)


def ed25519_pair():
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    except ImportError:
        with tempfile.TemporaryDirectory() as tmp:
            private = os.path.join(tmp, "private.pem")
            subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", private], check=True)
            public = subprocess.run(["openssl", "pkey", "-in", private, "-pubout"], check=True,
                                    capture_output=True).stdout
            with open(private, "rb") as handle:
                return handle.read(), public
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


def env_file(values):
    return "".join(f"{key}={value}\n" for key, value in values.items())


# What auth.env says when SMTP_URL is not given: a shape to fill in.
SMTP_URL_PLACEHOLDER = "smtp+starttls://CHANGE-ME:CHANGE-ME@smtp.example.com:587"


def build(overlay_secrets, smtp_url=None):
    """The files to write, as {name: bytes}."""
    db_password, redis_password = password(), password()
    minio_user, minio_password = "lifytp-" + secrets.token_hex(4), password()
    rabbit = {user: password() for user in ("admin",) + PROCESSES}
    db = f"postgresql+psycopg2://lifytp:{db_password}@postgres:5432/lifytp"
    redis = f"redis://:{redis_password}@redis:6379/0"

    def amqp(process):
        return f"amqp://lifytp-{process}:{rabbit[process]}@rabbitmq:5672/lifytp"

    files = {
        "postgres.env": env_file({"POSTGRES_PASSWORD": db_password}),
        "redis.env": env_file({"REDIS_PASSWORD": redis_password}),
        "minio.env": env_file({"MINIO_ROOT_USER": minio_user, "MINIO_ROOT_PASSWORD": minio_password}),
        "migrations.env": env_file({"AUTH_DATABASE_URL": db, "EVENTS_DATABASE_URL": db, "MESSAGES_DATABASE_URL": db}),
        "auth.env": env_file({"AUTH_DATABASE_URL": db, "AMQP_URI": amqp("auth"), "REDIS_URL": redis,
                              "SMTP_URL": smtp_url or SMTP_URL_PLACEHOLDER}),
        "events.env": env_file({"EVENTS_DATABASE_URL": db, "AMQP_URI": amqp("events"), "REDIS_URL": redis,
                                "S3_ACCESS_KEY_ID": minio_user, "S3_SECRET_ACCESS_KEY": minio_password}),
        "messages.env": env_file({"MESSAGES_DATABASE_URL": db, "AMQP_URI": amqp("messages"), "REDIS_URL": redis}),
        "realtime.env": env_file({"AMQP_URI": amqp("realtime"), "REDIS_URL": redis}),
        "rabbitmq-admin.env": env_file({"RABBITMQ_USER": "lifytp-admin", "RABBITMQ_PASSWORD": rabbit["admin"]}),
    }
    with open(DEFINITIONS) as handle:
        definitions = json.load(handle)
    for user in definitions["users"]:
        user["password_hash"] = rabbitmq_hash(rabbit[user["name"].removeprefix("lifytp-")])
    files["rabbitmq-definitions.json"] = json.dumps(definitions, indent=2) + "\n"
    private, public = ed25519_pair()
    files["jwt-private.pem"], files["jwt-public.pem"] = private, public
    return files


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overlay", help="an overlay directory, e.g. deploy/overlays/local")
    args = parser.parse_args(argv)
    target = os.path.join(args.overlay, "secrets")
    os.makedirs(target, exist_ok=True)
    files = build(target, os.environ.get("SMTP_URL"))
    # The key pair and the env files that share a password go together: write
    # a group only when none of it exists yet, so nothing ends up mismatched.
    existing = [name for name in files if os.path.exists(os.path.join(target, name))]
    if existing and len(existing) != len(files):
        sys.exit("{} holds some secret files but not all ({}): delete them all to regenerate".format(
            target, ", ".join(sorted(existing))))
    if existing:
        print(f"{target}: every secret file is there already; nothing written")
        return
    for name, content in files.items():
        path = os.path.join(target, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(content if isinstance(content, bytes) else content.encode())
    print(f"wrote {len(files)} secret files to {target}")


if __name__ == "__main__":
    main()
