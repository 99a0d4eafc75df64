"""Where media bytes live: a local directory (the default) or an S3 bucket.

Both answer the same three calls; `storage_from_config` picks one by
MEDIA_STORAGE. Keys are media ids (UUIDs), never names from the client.
"""
import os
import tempfile
from typing import Any, TypedDict

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from services.shared.errors import DependencyUnavailable

PRESIGNED_URL_SECONDS = 300


class _Credentials(TypedDict):
    region_name: str | None
    aws_access_key_id: str | None
    aws_secret_access_key: str | None


class LocalStorage:
    def __init__(self, directory: str) -> None:
        self.directory = os.path.abspath(directory)
        os.makedirs(self.directory, exist_ok=True)

    def _path(self, key: str) -> str:
        return os.path.join(self.directory, key)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        # Written aside then renamed: a reader never sees half a file.
        handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=".upload-")
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, self._path(key))

    def get(self, key: str) -> tuple[bytes | None, None]:
        """(bytes, None) or (None, None) when missing: served by us."""
        try:
            with open(self._path(key), "rb") as source:
                return source.read(), None
        except FileNotFoundError:
            return None, None

    def delete(self, key: str) -> None:
        try:
            os.remove(self._path(key))
        except FileNotFoundError:
            pass


class S3Storage:
    """A bucket that the service writes through `endpoint_url` and phones read
    from through `public_endpoint_url`.

    The two differ whenever the store sits inside a private network (compose,
    Kubernetes): the edge routes `/<bucket>/` on the public base URL to the
    store, unchanged, and the presigned URL is signed for that public host and
    path, which are what the store sees and checks. Without it, the URL names
    a host that only the private network resolves.
    """

    def __init__(self, bucket: str, endpoint_url: str | None = None, region: str | None = None,
                 access_key_id: str | None = None, secret_access_key: str | None = None,
                 public_base_url: str | None = None, public_endpoint_url: str | None = None) -> None:
        self.bucket = bucket
        self.public_base_url = (public_base_url or "").rstrip("/")
        credentials: _Credentials = {
            "region_name": region or None,
            "aws_access_key_id": access_key_id or None,
            "aws_secret_access_key": secret_access_key or None,
        }
        self.client = boto3.client(
            "s3", endpoint_url=endpoint_url or None, **credentials,
            config=BotoConfig(connect_timeout=3, read_timeout=10, retries={"max_attempts": 2},
                              s3={"addressing_style": "path"}),
        )
        # Signing is local: this client never connects anywhere.
        self.signer = self.client if not public_endpoint_url else boto3.client(
            "s3", endpoint_url=public_endpoint_url.rstrip("/"), **credentials,
            config=BotoConfig(s3={"addressing_style": "path"}, signature_version="s3v4"),
        )

    def put(self, key: str, data: bytes, content_type: str) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        except (BotoCoreError, ClientError) as exc:
            raise DependencyUnavailable("The media store is unavailable.", details={"store": "s3"}) from exc

    def get(self, key: str) -> tuple[None, str]:
        """(None, url): the client fetches the bytes from the store itself."""
        if self.public_base_url:
            return None, f"{self.public_base_url}/{key}"
        url = self.signer.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=PRESIGNED_URL_SECONDS,
        )
        return None, url

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            raise DependencyUnavailable("The media store is unavailable.", details={"store": "s3"}) from exc

    def ping(self) -> None:
        self.client.head_bucket(Bucket=self.bucket)


def storage_from_config(config: dict[str, Any]) -> LocalStorage | S3Storage:
    if config.get("MEDIA_STORAGE", "local") == "s3":
        return S3Storage(
            config["S3_BUCKET"], config.get("S3_ENDPOINT_URL"), config.get("S3_REGION"),
            config.get("S3_ACCESS_KEY_ID"), config.get("S3_SECRET_ACCESS_KEY"),
            config.get("MEDIA_PUBLIC_BASE_URL"), config.get("S3_PUBLIC_ENDPOINT_URL"),
        )
    return LocalStorage(config.get("MEDIA_LOCAL_DIR", "var/media"))
