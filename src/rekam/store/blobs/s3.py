"""S3BlobStore: objects in an S3-compatible bucket (AWS S3, SeaweedFS, MinIO, Ceph RGW).

Small objects go up in one PutObject; larger ones as a multipart upload of ``part_size`` parts,
streamed so memory holds about one part. If the source or the store fails mid-way the multipart
upload is aborted, so no object and no orphaned parts remain. Both kinds of write become visible
atomically (S3 publishes an object only when PutObject or CompleteMultipartUpload succeeds).
Reads stream the GetObject body.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from rekam.store.blobs.errors import BlobNotFound, BlobStoreError
from rekam.store.blobs.names import is_blob_name, validate_blob_name, validate_name_prefix

MiB = 1024 * 1024
DEFAULT_PART_SIZE = 8 * MiB
_MIN_PART = 5 * MiB  # S3's smallest allowed part (except the last)
_MAX_PART = 5 * 1024 * MiB
_READ_BUFFER = 256 * 1024
_KEY_PREFIX = re.compile(r"(?:[A-Za-z0-9_-][A-Za-z0-9._-]*/)*")
_NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})


class S3BlobStore:
    """Encrypted objects in one bucket, keyed ``key_prefix + name``."""

    def __init__(
        self,
        endpoint_url: str,
        bucket: str,
        access_key: str,
        secret_key: str,
        region: str = "us-east-1",
        verify: bool | str = True,
        *,
        key_prefix: str = "",
        part_size: int = DEFAULT_PART_SIZE,
        timeout_seconds: float = 60.0,
    ) -> None:
        if not _MIN_PART <= part_size <= _MAX_PART:
            raise ValueError("S3 part size must be between 5 MiB and 5 GiB")
        if _KEY_PREFIX.fullmatch(key_prefix) is None:
            raise ValueError(
                "the key prefix must be empty or segments each ending with '/', like 'blobs/'"
                " (none may start with '.')"
            )
        self.endpoint_url = endpoint_url
        self.bucket = bucket
        self.region = region
        self.key_prefix = key_prefix
        self.part_size = part_size
        self.client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name=region,
            verify=verify,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=timeout_seconds,
                read_timeout=timeout_seconds,
            ),
        )

    def __repr__(self) -> str:
        return f"S3BlobStore({self.endpoint_url!r}, bucket={self.bucket!r})"

    def close(self) -> None:
        self.client.close()

    def _where(self) -> str:
        return f"bucket {self.bucket} at {self.endpoint_url}"

    def key_of(self, name: str) -> str:
        """The S3 key of the object ``name``."""
        return self.key_prefix + validate_blob_name(name)

    @contextlib.contextmanager
    def _translated(self, action: str, name: str | None = None) -> Iterator[None]:
        """Turn botocore's errors into BlobNotFound / BlobStoreError with a readable message."""
        try:
            yield
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "unknown"))
            if name is not None and code in _NOT_FOUND:
                raise BlobNotFound(name, self._where()) from None
            raise BlobStoreError(
                f"the object store ({self._where()}) refused to {action}: {code}"
            ) from exc
        except BotoCoreError as exc:
            raise BlobStoreError(
                f"the object store ({self._where()}) could not {action}: {exc}"
            ) from exc

    # Setup -------------------------------------------------------------------------------------

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist yet."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code not in {"404", "NoSuchBucket", "NotFound"}:
                raise BlobStoreError(
                    f"the object store ({self._where()}) refused to open the bucket: {code}"
                ) from exc
        arguments: dict[str, Any] = {"Bucket": self.bucket}
        if self.region != "us-east-1":
            arguments["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        with self._translated("create the bucket"):
            self.client.create_bucket(**arguments)

    # Writing -----------------------------------------------------------------------------------

    def put(self, name: str, chunks: Iterable[bytes]) -> int:
        key = self.key_of(name)
        upload_id: str | None = None
        try:
            with self._translated("store a file"):
                buffer = bytearray()
                total = 0
                parts: list[dict[str, Any]] = []
                for chunk in chunks:
                    buffer += chunk
                    total += len(chunk)
                    if len(buffer) >= self.part_size:
                        if upload_id is None:
                            upload_id = self._start_multipart(key)
                        parts.append(self._upload_part(key, upload_id, len(parts) + 1, buffer))
                        buffer = bytearray()  # the part is sent; let it go
                if upload_id is None:
                    self.client.put_object(
                        Bucket=self.bucket,
                        Key=key,
                        Body=buffer,
                        ContentType="application/octet-stream",
                    )
                    return total
                if buffer or not parts:
                    parts.append(self._upload_part(key, upload_id, len(parts) + 1, buffer))
                self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                )
                return total
        except BaseException:
            if upload_id is not None:
                self._abort(key, upload_id)
            raise

    def _start_multipart(self, key: str) -> str:
        response = self.client.create_multipart_upload(
            Bucket=self.bucket, Key=key, ContentType="application/octet-stream"
        )
        return str(response["UploadId"])

    def _upload_part(
        self, key: str, upload_id: str, number: int, body: bytearray
    ) -> dict[str, Any]:
        response = self.client.upload_part(
            Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
        )
        return {"PartNumber": number, "ETag": response["ETag"]}

    def _abort(self, key: str, upload_id: str) -> None:
        # best effort: the original error is the one worth reporting
        with contextlib.suppress(ClientError, BotoCoreError):
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)

    # Reading -----------------------------------------------------------------------------------

    def open(self, name: str) -> BinaryIO:
        key = self.key_of(name)
        with self._translated("read a file", name):
            response = self.client.get_object(Bucket=self.bucket, Key=key)
        return io.BufferedReader(_BodyReader(response["Body"]), buffer_size=_READ_BUFFER)

    def _head(self, name: str) -> dict[str, Any] | None:
        key = self.key_of(name)
        try:
            with self._translated("look up a file", name):
                response: dict[str, Any] = self.client.head_object(Bucket=self.bucket, Key=key)
                return response
        except BlobNotFound:
            return None

    def exists(self, name: str) -> bool:
        return self._head(name) is not None

    def size(self, name: str) -> int:
        head = self._head(name)
        if head is None:
            raise BlobNotFound(name, self._where())
        return int(head["ContentLength"])

    def names(self, prefix: str = "") -> Iterator[str]:
        validate_name_prefix(prefix)
        paginator = self.client.get_paginator("list_objects_v2")
        found: list[str] = []
        with self._translated("list files"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.key_prefix + prefix):
                for entry in page.get("Contents", []):
                    name = str(entry["Key"])[len(self.key_prefix) :]
                    if is_blob_name(name):
                        found.append(name)
        return iter(sorted(found))

    # Deleting ----------------------------------------------------------------------------------

    def delete(self, name: str, *, missing_ok: bool = False) -> None:
        if not missing_ok and not self.exists(name):
            raise BlobNotFound(name, self._where())
        with self._translated("delete a file", name):
            self.client.delete_object(Bucket=self.bucket, Key=self.key_of(name))


class _BodyReader(io.RawIOBase):
    """botocore's StreamingBody as a raw binary stream (so it can sit in a BufferedReader)."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data: bytes = self._body.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()
