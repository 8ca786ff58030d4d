"""A keyring in a Vault-compatible transit engine (HashiCorp Vault or OpenBao): the KEK lives in
the server, which wraps and unwraps data keys for Rekam and never hands out the KEK.

Two transit keys, on mount ``transit`` by default:

``<key>`` (type ``aes256-gcm96``, not exportable)
    The KEK. Its transit versions are Rekam's KEK versions. ``wrap`` calls
    ``POST /v1/<mount>/encrypt/<key>`` with ``key_version`` and the caller's context as
    ``associated_data`` (AES-GCM additional data, so a wrapped key opens only for its owner);
    ``unwrap`` calls ``/decrypt/<key>`` with the same ``associated_data``.
``<key>-blind-index`` (type ``hmac``, 256-bit)
    The blind-index key: ``POST /hmac/<key>-blind-index`` (sha2-256, always version 1; never
    rotate it, or every blind index changes), truncated to 16 bytes like the other keyrings.

Wrapped data keys are transit's ciphertext string as ASCII bytes: ``vault:v<N>:<base64>``, where
the base64 holds transit's ``nonce (12) | ciphertext | tag (16)``.

Rotation is ``/keys/<key>/rotate``. Retiring version N raises ``min_decryption_version`` and
``min_encryption_version`` to N+1 and then trims the key (``/keys/<key>/trim``), which deletes the
key material of every version below N+1 — transit can only retire versions oldest first, and
never the newest one. Transit stops reporting the creation time of trimmed versions; they are
listed as retired with a creation time of 1970-01-01.

The token needs this policy (for key ``rekam`` on mount ``transit``)::

    path "transit/keys/rekam"               { capabilities = ["read", "create", "update"] }
    path "transit/keys/rekam-blind-index"   { capabilities = ["read", "create", "update"] }
    path "transit/keys/rekam/rotate"        { capabilities = ["update"] }
    path "transit/keys/rekam/config"        { capabilities = ["update"] }
    path "transit/keys/rekam/trim"          { capabilities = ["update"] }
    path "transit/encrypt/rekam"            { capabilities = ["update"] }
    path "transit/decrypt/rekam"            { capabilities = ["update"] }
    path "transit/hmac/rekam-blind-index"   { capabilities = ["update"] }
"""

from __future__ import annotations

import base64
import binascii
import re
import ssl
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from rekam.crypto.errors import (
    KeyringEmpty,
    KeyringError,
    KeyringUnavailable,
    UnknownKeyVersion,
    WrappedKeyInvalid,
)
from rekam.crypto.keyring import BLIND_INDEX_BYTES, KekVersion, newest_usable

KEK_TYPE = "aes256-gcm96"
BLIND_INDEX_KEY_VERSION = 1
_RELOAD_CHECK_SECONDS = 1.0
_UNKNOWN_TIME = datetime.fromtimestamp(0, UTC)
_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")


class VaultTransitKeyring:
    """Key-encryption keys held by a Vault / OpenBao transit engine."""

    def __init__(
        self,
        url: str,
        token: str,
        key_name: str,
        mount: str = "transit",
        verify: str | Path | bool = True,
        *,
        blind_index_key_name: str | None = None,
        namespace: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        for name in (key_name, mount, blind_index_key_name or key_name):
            if not _NAME.fullmatch(name):
                raise KeyringError(f"{name!r} is not a valid transit key or mount name")
        self.url = url.rstrip("/")
        self.key_name = key_name
        self.mount = mount
        self.blind_index_key_name = blind_index_key_name or f"{key_name}-blind-index"
        headers = {"X-Vault-Token": token}
        if namespace:
            headers["X-Vault-Namespace"] = namespace
        self._client = httpx.Client(
            base_url=f"{self.url}/v1/{mount}/",
            headers=headers,
            verify=_tls(verify),
            timeout=timeout,
            follow_redirects=False,
        )
        self._lock = threading.Lock()
        self._versions: dict[int, KekVersion] = {}
        self._checked_at = 0.0
        try:
            self._load()
            self._check_blind_index_key()
        except BaseException:
            self._client.close()
            raise

    # Creation ----------------------------------------------------------------------------------

    @classmethod
    def initialise(
        cls,
        url: str,
        token: str,
        key_name: str,
        mount: str = "transit",
        verify: str | Path | bool = True,
        *,
        blind_index_key_name: str | None = None,
        namespace: str | None = None,
        timeout: float = 10.0,
    ) -> VaultTransitKeyring:
        """Create the KEK and blind-index transit keys; refuses if either exists already."""
        blind_name = blind_index_key_name or f"{key_name}-blind-index"
        headers = {"X-Vault-Token": token}
        if namespace:
            headers["X-Vault-Namespace"] = namespace
        with httpx.Client(
            base_url=f"{url.rstrip('/')}/v1/{mount}/",
            headers=headers,
            verify=_tls(verify),
            timeout=timeout,
        ) as client:
            for name in (key_name, blind_name):
                if _request(client, "GET", f"keys/{name}", allow_missing=True) is not None:
                    raise KeyringError(
                        f"refusing to initialise: the transit key '{mount}/{name}' already exists"
                    )
            _request(
                client,
                "POST",
                f"keys/{key_name}",
                {"type": KEK_TYPE, "exportable": False, "allow_plaintext_backup": False},
            )
            _request(
                client,
                "POST",
                f"keys/{blind_name}",
                {"type": "hmac", "key_size": 32, "exportable": False},
            )
        return cls(
            url,
            token,
            key_name,
            mount,
            verify,
            blind_index_key_name=blind_name,
            namespace=namespace,
            timeout=timeout,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> VaultTransitKeyring:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Loading -----------------------------------------------------------------------------------

    def _key_info(self) -> dict[str, Any]:
        data = _request(self._client, "GET", f"keys/{self.key_name}", allow_missing=True)
        if data is None:
            raise KeyringEmpty(
                f"the transit key '{self.mount}/{self.key_name}' does not exist at {self.url}: "
                "initialise it first (see docs/keyrings.md)"
            )
        return dict(data)

    def _load(self) -> None:
        info = self._key_info()
        if info.get("type") != KEK_TYPE:
            raise KeyringError(
                f"the transit key '{self.mount}/{self.key_name}' is of type {info.get('type')}, "
                f"not {KEK_TYPE}"
            )
        latest = int(info["latest_version"])
        first_usable = max(int(info.get("min_decryption_version") or 1), 1)
        created = _creation_times(info.get("keys") or {})
        versions: dict[int, KekVersion] = {}
        for version in range(1, latest + 1):
            versions[version] = KekVersion(
                key_id=self.key_id,
                version=version,
                created_at=created.get(version, _UNKNOWN_TIME),
                retired=version < first_usable,
            )
        self._versions = versions
        self._checked_at = time.monotonic()

    def _check_blind_index_key(self) -> None:
        name = self.blind_index_key_name
        data = _request(self._client, "GET", f"keys/{name}", allow_missing=True)
        if data is None:
            raise KeyringUnavailable(
                f"the blind-index transit key '{self.mount}/{name}' does not exist at {self.url}"
            )
        if data.get("type") != "hmac":
            raise KeyringError(f"the transit key '{self.mount}/{name}' is not of type hmac")

    def _refresh(self, force: bool = False) -> None:
        if force or time.monotonic() - self._checked_at >= _RELOAD_CHECK_SECONDS:
            self._load()

    def _usable(self, version: int) -> None:
        with self._lock:
            record = self._versions.get(version)
            if record is None or record.retired:
                self._refresh(force=True)
                record = self._versions.get(version)
        if record is None or record.retired:
            state = "retired" if record is not None else "unknown"
            raise UnknownKeyVersion(f"key-encryption key version {version} is {state}")

    # Keyring interface -------------------------------------------------------------------------

    @property
    def key_id(self) -> str:
        """``vault:<mount>/<key>``: the server address is left out, so it may move."""
        return f"vault:{self.mount}/{self.key_name}"

    def versions(self) -> list[KekVersion]:
        with self._lock:
            self._refresh()
            return [self._versions[v] for v in sorted(self._versions)]

    def active_version(self) -> KekVersion:
        with self._lock:
            self._refresh()
            return newest_usable(self._versions.values())

    def wrap(self, version: int, data_key: bytes, context: bytes) -> bytes:
        self._usable(version)
        data = self._crypto_request(
            f"encrypt/{self.key_name}",
            {
                "plaintext": _b64(data_key),
                "associated_data": _b64(context),
                "key_version": version,
            },
            version,
        )
        ciphertext = str(data.get("ciphertext", ""))
        if not ciphertext.startswith(f"vault:v{version}:"):
            raise KeyringUnavailable(
                f"the transit engine wrapped under another version than {version}: "
                f"{ciphertext[:12]}"
            )
        return ciphertext.encode("ascii")

    def unwrap(self, version: int, wrapped: bytes, context: bytes) -> bytes:
        try:
            ciphertext = wrapped.decode("ascii")
        except UnicodeDecodeError as exc:
            raise WrappedKeyInvalid("a wrapped data key is not a transit ciphertext") from exc
        if not ciphertext.startswith(f"vault:v{version}:"):
            raise WrappedKeyInvalid(
                f"a wrapped data key does not belong to KEK version {version} (swapped or altered)"
            )
        self._usable(version)
        data = self._crypto_request(
            f"decrypt/{self.key_name}",
            {"ciphertext": ciphertext, "associated_data": _b64(context)},
            version,
        )
        try:
            return base64.b64decode(str(data["plaintext"]), validate=True)
        except (KeyError, binascii.Error) as exc:
            raise KeyringUnavailable("the transit engine returned no plaintext") from exc

    def _crypto_request(self, path: str, body: dict[str, Any], version: int) -> dict[str, Any]:
        """encrypt/decrypt; a refusal names a retired version, or (decrypt) a bad wrapping."""
        try:
            return dict(_request(self._client, "POST", path, body))
        except _Refused as refused:
            message = refused.message.lower()
            if "disallowed by policy" in message or (
                "version" in message and ("minimum" in message or "latest" in message)
            ):
                raise UnknownKeyVersion(
                    f"key-encryption key version {version} is retired or unknown ({refused})"
                ) from refused
            if path.startswith("encrypt/"):
                raise KeyringError(
                    f"the transit engine refused to wrap a data key: {refused}"
                ) from refused
            raise WrappedKeyInvalid(
                "a wrapped data key does not open for its owner (swapped, altered, or wrong KEK)"
            ) from refused

    def rotate(self) -> KekVersion:
        with self._lock:
            _request(self._client, "POST", f"keys/{self.key_name}/rotate", {})
            self._refresh(force=True)
            return self._versions[max(self._versions)]

    def retire(self, version: int) -> None:
        with self._lock:
            self._refresh(force=True)
            record = self._versions.get(version)
            if record is None:
                raise UnknownKeyVersion(f"there is no key-encryption key version {version}")
            if record.retired:
                return
            live = sorted(v.version for v in self._versions.values() if not v.retired)
            if len(live) <= 1:
                raise KeyringError("the only usable key-encryption key cannot be retired")
            if version == live[-1]:
                raise KeyringError(
                    "a transit engine cannot retire its newest key version: rotate first"
                )
            if version != live[0]:
                raise KeyringError(
                    f"a transit engine retires versions oldest first: retire version {live[0]} "
                    f"before version {version}"
                )
            _request(
                self._client,
                "POST",
                f"keys/{self.key_name}/config",
                {"min_decryption_version": version + 1, "min_encryption_version": version + 1},
            )
            _request(
                self._client,
                "POST",
                f"keys/{self.key_name}/trim",
                {"min_available_version": version + 1},
            )
            self._refresh(force=True)

    def blind_index(self, domain: str, normalised_value: bytes) -> bytes:
        message = b"rekam-blind-index-v1|" + domain.encode() + b"|" + normalised_value
        data = _request(
            self._client,
            "POST",
            f"hmac/{self.blind_index_key_name}",
            {
                "input": _b64(message),
                "algorithm": "sha2-256",
                "key_version": BLIND_INDEX_KEY_VERSION,
            },
        )
        text = str(data.get("hmac", ""))
        prefix = f"vault:v{BLIND_INDEX_KEY_VERSION}:"
        if not text.startswith(prefix):
            raise KeyringUnavailable("the transit engine returned no HMAC")
        return base64.b64decode(text[len(prefix) :])[:BLIND_INDEX_BYTES]


# HTTP ----------------------------------------------------------------------------------------


class _Refused(KeyringError):
    """The server understood the request and refused it (HTTP 400)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _request(
    client: httpx.Client,
    method: str,
    path: str,
    body: Mapping[str, Any] | None = None,
    allow_missing: bool = False,
) -> Any:
    """One transit API call; returns its ``data`` (None for 404 when ``allow_missing``)."""
    where = f"{client.base_url}{path}"
    try:
        response = client.request(method, path, json=body)
    except httpx.HTTPError as exc:
        raise KeyringUnavailable(
            f"the transit engine at {client.base_url} cannot be reached: {exc}"
        ) from exc
    if response.status_code == 404 and allow_missing:
        return None
    errors = _errors(response)
    if response.status_code in (401, 403):
        raise KeyringUnavailable(
            f"the transit engine refused the token for {method} {where} ({errors or 'denied'}): "
            "check the token file and its policy"
        )
    if response.status_code == 400:
        raise _Refused(errors or "bad request")
    if response.status_code == 204:
        return {}
    if response.status_code >= 300:
        sealed = " (is it sealed?)" if response.status_code == 503 else ""
        raise KeyringUnavailable(
            f"the transit engine answered {response.status_code} to {method} {where}{sealed}: "
            f"{errors}"
        )
    try:
        document = response.json()
    except ValueError as exc:
        raise KeyringUnavailable(f"the transit engine sent a non-JSON answer to {where}") from exc
    data = document.get("data") if isinstance(document, dict) else None
    return data if isinstance(data, dict) else {}


def _errors(response: httpx.Response) -> str:
    try:
        document = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(document, dict) and isinstance(document.get("errors"), list):
        return "; ".join(str(e) for e in document["errors"])
    return ""


def _tls(verify: str | Path | bool) -> ssl.SSLContext | bool:
    if isinstance(verify, bool):
        return verify
    try:
        return ssl.create_default_context(cafile=str(verify))
    except (OSError, ssl.SSLError) as exc:
        raise KeyringUnavailable(f"the CA bundle {verify} cannot be read: {exc}") from exc


def _creation_times(keys: Mapping[str, Any]) -> dict[int, datetime]:
    """Transit's ``keys`` map: version -> unix time (or a dict with ``creation_time``)."""
    created: dict[int, datetime] = {}
    for version, value in keys.items():
        if isinstance(value, int | float):
            created[int(version)] = datetime.fromtimestamp(value, UTC)
        elif isinstance(value, dict) and "creation_time" in value:
            created[int(version)] = datetime.fromisoformat(str(value["creation_time"]))
    return created


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
