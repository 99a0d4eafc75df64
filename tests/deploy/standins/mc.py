#!/usr/bin/python3
"""A stand-in for MinIO's `mc`: the three commands docker-compose.yml runs.

  mc ready local                       the server on this host answers
  mc alias set NAME URL USER PASSWORD  remembered in ~/.mc/config.json
  mc mb [--ignore-existing] NAME/BUCKET
"""
import json
import os
import sys
import urllib.request

import boto3
from botocore.exceptions import ClientError

CONFIG = os.path.join(os.path.expanduser("~"), ".mc", "config.json")


def aliases():
    try:
        with open(CONFIG) as source:
            return json.load(source)["aliases"]
    except FileNotFoundError:
        return {"local": {"url": "http://127.0.0.1:9000"}}


def ready(name):
    url = aliases()[name]["url"] + "/minio/health/ready"
    try:
        urllib.request.urlopen(url, timeout=3)
    except OSError as error:
        sys.exit(f"mc: {name} is not ready: {error}")


def alias_set(name, url, user, password):
    known = aliases()
    known[name] = {"url": url.rstrip("/"), "accessKey": user, "secretKey": password}
    os.makedirs(os.path.dirname(CONFIG), exist_ok=True)
    with open(CONFIG, "w") as out:
        json.dump({"version": "10", "aliases": known}, out)
    print(f"Added `{name}` successfully.")


def make_bucket(target, ignore_existing):
    name, _, bucket = target.partition("/")
    alias = aliases()[name]
    client = boto3.client("s3", endpoint_url=alias["url"], aws_access_key_id=alias["accessKey"],
                          aws_secret_access_key=alias["secretKey"], region_name="us-east-1")
    try:
        client.create_bucket(Bucket=bucket)
    except ClientError as error:
        if not (ignore_existing and error.response["Error"]["Code"] == "BucketAlreadyOwnedByYou"):
            sys.exit(f"mc: {error}")
    print(f"Bucket created successfully `{target}`.")


def main(args):
    if args[:1] == ["ready"] and len(args) == 2:
        return ready(args[1])
    if args[:2] == ["alias", "set"] and len(args) == 6:
        return alias_set(*args[2:])
    if args[:1] == ["mb"]:
        rest = [a for a in args[1:] if a != "--ignore-existing"]
        if len(rest) == 1:
            return make_bucket(rest[0], "--ignore-existing" in args)
    sys.exit("mc stand-in: unsupported command: " + " ".join(args))


if __name__ == "__main__":
    main(sys.argv[1:])
