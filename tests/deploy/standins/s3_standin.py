#!/usr/bin/python3
"""A stand-in for `minio server /data`: the S3 calls LifyTP makes, on port 9000.

Private buckets, as LifyTP's MinIO: every request but the health checks must
carry a valid AWS Signature V4 for MINIO_ROOT_USER / MINIO_ROOT_PASSWORD,
in the Authorization header or as a presigned URL. The signature is
recomputed with botocore's own signer over the request as it arrived (its
Host header, path and query), so a URL signed for another host or path than
the one it is loaded from is refused, as MinIO refuses it.

Path-style only: PUT/HEAD a bucket; PUT, GET (with Range), HEAD, DELETE an
object. Objects are files under the data directory, beside a JSON file of
their metadata, so a named volume keeps them across restarts.
"""
import datetime
import hashlib
import hmac
import json
import os
import re
import signal
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ACCESS_KEY = os.environ.get("MINIO_ROOT_USER", "minioadmin")
SECRET_KEY = os.environ.get("MINIO_ROOT_PASSWORD", "minioadmin")
NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
UNSIGNED = "UNSIGNED-PAYLOAD"


class Refused(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def credential_scope(credential):
    parts = credential.split("/")
    if len(parts) != 5 or parts[3] != "s3" or parts[4] != "aws4_request":
        raise Refused(400, "AuthorizationHeaderMalformed", "The credential is malformed.")
    if parts[0] != ACCESS_KEY:
        raise Refused(403, "InvalidAccessKeyId", "The access key does not exist.")
    return parts[2]  # the region


def signed_request(handler, url, signed_headers, timestamp):
    headers = {name: handler.headers.get(name, "") for name in signed_headers}
    request = AWSRequest(method=handler.command, url=url, headers=headers)
    request.context["timestamp"] = timestamp
    return request


def expected_signature(auth, request):
    canonical = auth.canonical_request(request)
    return auth.signature(auth.string_to_sign(request, canonical), request)


def check_header_signature(handler, body):
    fields = dict(re.findall(r"(\w+)=([^,\s]+)", handler.headers["Authorization"]))
    if not {"Credential", "SignedHeaders", "Signature"} <= fields.keys():
        raise Refused(400, "AuthorizationHeaderMalformed", "The authorization header is malformed.")
    region = credential_scope(fields["Credential"])
    payload = handler.headers.get("x-amz-content-sha256", "")
    if payload != UNSIGNED and payload != hashlib.sha256(body).hexdigest():
        raise Refused(400, "XAmzContentSHA256Mismatch", "The body does not match x-amz-content-sha256.")
    request = signed_request(handler, "http://{}{}".format(handler.headers.get("Host", ""), handler.path),
                             fields["SignedHeaders"].split(";"), handler.headers.get("x-amz-date", ""))
    auth = S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", region)
    return hmac.compare_digest(expected_signature(auth, request), fields["Signature"])


def check_query_signature(handler, path, query):
    fields = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
    region = credential_scope(fields.get("X-Amz-Credential", ""))
    try:
        signed_at = datetime.datetime.strptime(fields["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
        expires = int(fields["X-Amz-Expires"])
    except (KeyError, ValueError):
        raise Refused(400, "AuthorizationQueryParametersError", "The presigned URL is malformed.") from None
    if datetime.datetime.now(datetime.UTC) > signed_at + datetime.timedelta(seconds=expires):
        raise Refused(403, "AccessDenied", "Request has expired")
    unsigned_query = "&".join(part for part in query.split("&") if not part.startswith("X-Amz-Signature="))
    request = signed_request(handler, "http://{}{}?{}".format(handler.headers.get("Host", ""), path, unsigned_query),
                             fields.get("X-Amz-SignedHeaders", "host").split(";"), fields["X-Amz-Date"])
    auth = S3SigV4QueryAuth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", region, expires=expires)
    return hmac.compare_digest(expected_signature(auth, request), fields.get("X-Amz-Signature", ""))


class Store:
    def __init__(self, directory):
        self.directory = directory

    def bucket(self, name):
        return os.path.join(self.directory, name)

    def object(self, bucket, key):
        safe = urllib.parse.quote(key, safe="")
        return os.path.join(self.bucket(bucket), safe), os.path.join(self.bucket(bucket), "." + safe + ".json")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    store = None

    def log_message(self, format, *args):
        sys.stderr.write("s3 %s\n" % (format % args))

    def answer(self, status, body=b"", headers=None):
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def error(self, status, code, message):
        body = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message>"
                "</Error>").encode()
        self.answer(status, body, {"Content-Type": "application/xml"})

    def handle_any(self):
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if path.startswith("/minio/health/"):
            return self.answer(200)
        try:
            if "X-Amz-Signature=" in query:
                valid = check_query_signature(self, path, query)
            elif self.headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256 "):
                valid = check_header_signature(self, body)
            else:
                raise Refused(403, "AccessDenied", "Access Denied.")
            if not valid:
                raise Refused(403, "SignatureDoesNotMatch", "The request signature we calculated does not match.")
            self.serve(urllib.parse.unquote(path), body)
        except Refused as refused:
            self.error(refused.status, refused.code, refused.message)

    def serve(self, path, body):
        bucket, _, key = path.lstrip("/").partition("/")
        if not NAME.match(bucket):
            raise Refused(400, "InvalidBucketName", "The bucket name is not valid.")
        if not key:
            return self.serve_bucket(bucket)
        if not os.path.isdir(self.store.bucket(bucket)):
            raise Refused(404, "NoSuchBucket", "The bucket does not exist.")
        data_path, meta_path = self.store.object(bucket, key)
        if self.command == "PUT":
            return self.put_object(data_path, meta_path, body)
        if self.command == "DELETE":
            for name in (data_path, meta_path):
                if os.path.exists(name):
                    os.remove(name)
            return self.answer(204)
        if self.command in ("GET", "HEAD"):
            return self.get_object(data_path, meta_path)
        raise Refused(405, "MethodNotAllowed", "The method is not allowed.")

    def serve_bucket(self, bucket):
        directory = self.store.bucket(bucket)
        if self.command == "PUT":
            if os.path.isdir(directory):
                raise Refused(409, "BucketAlreadyOwnedByYou", "The bucket exists and is yours.")
            os.makedirs(directory)
            return self.answer(200, headers={"Location": "/" + bucket})
        if self.command == "HEAD":
            return self.answer(200 if os.path.isdir(directory) else 404)
        raise Refused(405, "MethodNotAllowed", "Only PUT and HEAD on a bucket.")

    def put_object(self, data_path, meta_path, body):
        etag = f'"{hashlib.md5(body).hexdigest()}"'
        meta = {"content_type": self.headers.get("Content-Type", "binary/octet-stream"), "etag": etag,
                "modified": self.date_time_string()}
        for target, content in ((data_path, body), (meta_path, json.dumps(meta).encode())):
            with open(target + ".part", "wb") as out:
                out.write(content)
            os.replace(target + ".part", target)
        self.answer(200, headers={"ETag": etag})

    def get_object(self, data_path, meta_path):
        if not os.path.exists(meta_path):
            raise Refused(404, "NoSuchKey", "The specified key does not exist.")
        with open(meta_path) as source:
            meta = json.load(source)
        with open(data_path, "rb") as source:
            data = source.read()
        headers = {"Content-Type": meta["content_type"], "ETag": meta["etag"], "Last-Modified": meta["modified"],
                   "Accept-Ranges": "bytes"}
        wanted = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
        if not wanted or not any(wanted.groups()):
            return self.answer(200, data, headers)
        first, last = wanted.groups()
        start = int(first) if first else max(0, len(data) - int(last))
        end = min(int(last), len(data) - 1) if first and last else len(data) - 1
        if start >= len(data) or start > end:
            return self.answer(416, b"", {"Content-Range": f"bytes */{len(data)}"})
        headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        self.answer(206, data[start:end + 1], headers)

    do_GET = do_HEAD = do_PUT = do_DELETE = do_POST = handle_any


def main(argv):
    if len(argv) < 2 or argv[0] != "server":
        sys.exit("usage: minio server DIRECTORY [--console-address ADDRESS]")
    directory = argv[1]
    os.makedirs(directory, exist_ok=True)
    Handler.store = Store(directory)
    server = ThreadingHTTPServer(("0.0.0.0", 9000), Handler)
    # As PID 1, a signal without a handler is ignored: docker stop would wait.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"S3 stand-in serving {directory} on :9000", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
