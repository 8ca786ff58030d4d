"""A keyring on a PKCS#11 token (an HSM, or SoftHSM2): KEKs are generated on the token and never
leave it; data keys are wrapped and unwrapped by the token itself.

Objects on the token (all token objects, private, so only visible after login), for a key label
prefix ``P`` (default ``rekam-kek``):

``P-v<N>``  (CKO_SECRET_KEY, CKK_AES, 256 bits)
    KEK version N. CKA_SENSITIVE true, CKA_EXTRACTABLE false, CKA_MODIFIABLE false; usable for
    encrypt/decrypt and wrap/unwrap only. CKA_ID is ASCII ``v<N>@<unix seconds>``: the version and
    its creation time (PKCS#11 has no creation-time attribute for keys).
``P-v<N>``  (CKO_DATA, CKA_APPLICATION ``rekam-keyring``)
    The tombstone of a retired version N: JSON ``{"version", "created", "retired"}`` (unix
    seconds). The key object itself is destroyed; the tombstone keeps the version listed as
    retired and its number from being reused.
``P-blind-index``  (CKO_SECRET_KEY, CKK_GENERIC_SECRET, 256 bits)
    The blind-index key, sign/verify only (CKM_SHA256_HMAC), sensitive and non-extractable.

A wrapped data key is ``nonce (12) | ciphertext | tag (16)``: CKM_AES_GCM inside the token with
a random 12-byte IV, a 128-bit tag and the caller's context as associated data (the same layout as
the local keyring, so a wrapped key opens only for its owner).

PKCS#11 keeps one login state per process and token (see :func:`open_token_session`): the first
keyring on a token logs in, later ones share that login and must present the same PIN.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11.mechanisms import GCMParams
from pkcs11.types import DecryptMixin, EncryptMixin, SignMixin

from rekam.crypto.errors import (
    KeyringEmpty,
    KeyringError,
    KeyringUnavailable,
    UnknownKeyVersion,
    WrappedKeyInvalid,
)
from rekam.crypto.keyring import BLIND_INDEX_BYTES, KekVersion, newest_usable

DEFAULT_PREFIX = "rekam-kek"
TOMBSTONE_APPLICATION = "rekam-keyring"
_NONCE = 12
_TAG = 16
_KEK_BITS = 256
_BLIND_INDEX_BITS = 256
_RELOAD_CHECK_SECONDS = 1.0

_T = TypeVar("_T")

#: token errors that mean the session or the device is gone (reconnect once, then give up)
_CONNECTION_LOST: tuple[type[pkcs11.PKCS11Error], ...] = (
    pkcs11.exceptions.SessionClosed,
    pkcs11.exceptions.SessionHandleInvalid,
    pkcs11.exceptions.DeviceRemoved,
    pkcs11.exceptions.DeviceError,
    pkcs11.exceptions.TokenNotPresent,
    pkcs11.exceptions.TokenNotRecognised,
    pkcs11.exceptions.UserNotLoggedIn,
)

_PIN_REFUSED: tuple[type[pkcs11.PKCS11Error], ...] = (
    pkcs11.exceptions.PinIncorrect,
    pkcs11.exceptions.PinInvalid,
    pkcs11.exceptions.PinLenRange,
    pkcs11.exceptions.PinExpired,
)


@dataclass
class _KekObject:
    version: int
    created_at: datetime
    encryptor: EncryptMixin  # the same token object, seen through its two capabilities
    decryptor: DecryptMixin


class Pkcs11Keyring:
    """Key-encryption keys that never leave a PKCS#11 token."""

    def __init__(
        self,
        module_path: str | Path,
        token_label: str,
        user_pin: str,
        key_label_prefix: str = DEFAULT_PREFIX,
    ) -> None:
        _check_prefix(key_label_prefix)
        self.module_path = str(module_path)
        self.token_label = token_label
        self.key_label_prefix = key_label_prefix
        self._pin = user_pin
        self._lock = threading.RLock()
        self._session: pkcs11.Session | None = None
        self._keks: dict[int, _KekObject] = {}
        self._versions: dict[int, KekVersion] = {}
        self._blind_key: SignMixin | None = None
        self._checked_at = 0.0
        with self._lock:
            self._connect()
            self._refresh(force=True)
            if not self._versions:
                raise KeyringEmpty(
                    f"the token '{token_label}' holds no key-encryption key labelled "
                    f"'{key_label_prefix}-v<N>': initialise it first (see docs/keyrings.md)"
                )
            if self._blind_key is None:
                raise KeyringUnavailable(
                    f"the token '{token_label}' holds no blind-index key "
                    f"'{key_label_prefix}-blind-index'"
                )

    # Creation ----------------------------------------------------------------------------------

    @classmethod
    def initialise(
        cls,
        module_path: str | Path,
        token_label: str,
        user_pin: str,
        key_label_prefix: str = DEFAULT_PREFIX,
    ) -> Pkcs11Keyring:
        """Create KEK version 1 and the blind-index key on a token that has neither."""
        _check_prefix(key_label_prefix)
        session = open_token_session(str(module_path), token_label, user_pin)
        try:
            existing = [
                label
                for label in _labels(session)
                if label == f"{key_label_prefix}-blind-index"
                or _version_of(key_label_prefix, label) is not None
            ]
            if existing:
                raise KeyringError(
                    f"refusing to initialise: the token '{token_label}' already holds "
                    f"{', '.join(sorted(existing))}"
                )
            _generate_kek(session, key_label_prefix, 1)
            session.generate_key(
                KeyType.GENERIC_SECRET,
                _BLIND_INDEX_BITS,
                label=f"{key_label_prefix}-blind-index",
                id=b"blind-index",
                store=True,
                capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
                template=_protected_template(),
            )
        except pkcs11.PKCS11Error as exc:
            raise KeyringUnavailable(
                f"the token '{token_label}' refused to create keys: {_describe(exc)}"
            ) from exc
        finally:
            session.close()
        return cls(module_path, token_label, user_pin, key_label_prefix)

    # Session handling --------------------------------------------------------------------------

    def _connect(self) -> None:
        if self._session is not None:
            with contextlib.suppress(pkcs11.PKCS11Error):
                self._session.close()
            self._session = None
        self._session = open_token_session(self.module_path, self.token_label, self._pin)

    @property
    def _live_session(self) -> pkcs11.Session:
        if self._session is None:
            raise KeyringUnavailable(f"the keyring on token '{self.token_label}' is closed")
        return self._session

    def _call(self, operation: Callable[[], _T]) -> _T:
        """Run a token operation (lock held); reconnect once if the session was lost."""
        try:
            return operation()
        except _CONNECTION_LOST:
            pass
        _forget_login(self.module_path, self.token_label)
        self._connect()
        self._keks, self._blind_key, self._checked_at = {}, None, 0.0
        try:
            self._load()
            return operation()
        except _CONNECTION_LOST as exc:
            raise KeyringUnavailable(
                f"the token '{self.token_label}' stopped answering: {_describe(exc)}"
            ) from exc

    def close(self) -> None:
        """Close the session (the keyring cannot be used afterwards)."""
        with self._lock:
            if self._session is not None:
                with contextlib.suppress(pkcs11.PKCS11Error):
                    self._session.close()
                self._session = None

    def __enter__(self) -> Pkcs11Keyring:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Loading -----------------------------------------------------------------------------------

    def _load(self) -> None:
        session = self._live_session
        prefix = self.key_label_prefix
        keks: dict[int, _KekObject] = {}
        versions: dict[int, KekVersion] = {}
        key_id = self.key_id
        for obj in session.get_objects(
            {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES}
        ):
            label = str(obj[Attribute.LABEL])
            version = _version_of(prefix, label)
            if version is None:
                continue
            if version in keks:
                raise KeyringError(f"the token holds two key objects labelled '{label}'")
            if not isinstance(obj, EncryptMixin) or not isinstance(obj, DecryptMixin):
                raise KeyringError(f"the token object '{label}' cannot encrypt and decrypt")
            created = _created_from_id(bytes(obj[Attribute.ID]), version)
            keks[version] = _KekObject(version, created, obj, obj)
            versions[version] = KekVersion(key_id, version, created)
        for obj in session.get_objects(
            {Attribute.CLASS: ObjectClass.DATA, Attribute.APPLICATION: TOMBSTONE_APPLICATION}
        ):
            version = _version_of(prefix, str(obj[Attribute.LABEL]))
            if version is None:
                continue
            tombstone = json.loads(bytes(obj[Attribute.VALUE]))
            created = datetime.fromtimestamp(int(tombstone["created"]), UTC)
            versions[version] = KekVersion(key_id, version, created, retired=True)
            keks.pop(version, None)  # a tombstone wins over a key left by an interrupted retire
        blind = None
        for obj in session.get_objects(
            {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: f"{prefix}-blind-index"}
        ):
            if not isinstance(obj, SignMixin):
                raise KeyringError(f"the token object '{prefix}-blind-index' cannot sign")
            blind = obj
        self._keks, self._versions, self._blind_key = keks, versions, blind
        self._checked_at = time.monotonic()

    def _refresh(self, force: bool = False) -> None:
        if force or time.monotonic() - self._checked_at >= _RELOAD_CHECK_SECONDS:
            try:
                self._call(self._load)
            except pkcs11.PKCS11Error as exc:
                raise KeyringUnavailable(
                    f"the objects on token '{self.token_label}' cannot be listed: {_describe(exc)}"
                ) from exc

    def _kek(self, version: int) -> _KekObject:
        kek = self._keks.get(version)
        if kek is None:
            self._refresh(force=True)
            kek = self._keks.get(version)
        if kek is None:
            state = "retired" if version in self._versions else "unknown"
            raise UnknownKeyVersion(f"key-encryption key version {version} is {state}")
        return kek

    def _with_kek(self, version: int, operation: Callable[[_KekObject], _T]) -> _T:
        """Run ``operation`` with KEK ``version``; if another process destroyed it, say so."""
        try:
            return self._call(lambda: operation(self._kek(version)))
        except (pkcs11.exceptions.ObjectHandleInvalid, pkcs11.exceptions.KeyHandleInvalid):
            self._refresh(force=True)
            return self._call(lambda: operation(self._kek(version)))

    # Keyring interface -------------------------------------------------------------------------

    @property
    def key_id(self) -> str:
        return f"pkcs11:{self.token_label}:{self.key_label_prefix}"

    def versions(self) -> list[KekVersion]:
        with self._lock:
            self._refresh()
            return [self._versions[v] for v in sorted(self._versions)]

    def active_version(self) -> KekVersion:
        with self._lock:
            self._refresh()
            return newest_usable(self._versions.values())

    def wrap(self, version: int, data_key: bytes, context: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        params = GCMParams(nonce, context, _TAG * 8)

        def encrypt(kek: _KekObject) -> bytes:
            return _one_block(
                kek.encryptor.encrypt(data_key, mechanism=Mechanism.AES_GCM, mechanism_param=params)
            )

        with self._lock:
            try:
                return nonce + self._with_kek(version, encrypt)
            except pkcs11.PKCS11Error as exc:
                raise KeyringUnavailable(
                    f"the token '{self.token_label}' could not wrap a data key: {_describe(exc)}"
                ) from exc

    def unwrap(self, version: int, wrapped: bytes, context: bytes) -> bytes:
        if len(wrapped) < _NONCE + _TAG:
            raise WrappedKeyInvalid("a wrapped data key is cut short")
        params = GCMParams(wrapped[:_NONCE], context, _TAG * 8)

        def decrypt(kek: _KekObject) -> bytes:
            return _one_block(
                kek.decryptor.decrypt(
                    wrapped[_NONCE:], mechanism=Mechanism.AES_GCM, mechanism_param=params
                )
            )

        with self._lock:
            try:
                return self._with_kek(version, decrypt)
            except pkcs11.PKCS11Error as exc:
                # SoftHSM2 reports a failed tag as CKR_GENERAL_ERROR, HSMs as
                # CKR_ENCRYPTED_DATA_INVALID: either way, the wrapped key does not open here.
                raise WrappedKeyInvalid(
                    "a wrapped data key does not open for its owner (swapped, altered, or wrong "
                    "KEK)"
                ) from exc

    def rotate(self) -> KekVersion:
        with self._lock:
            self._refresh(force=True)
            newest = max(self._versions, default=0) + 1
            try:
                self._call(lambda: _generate_kek(self._live_session, self.key_label_prefix, newest))
            except pkcs11.PKCS11Error as exc:
                raise KeyringUnavailable(
                    f"the token '{self.token_label}' could not create a key: {_describe(exc)}"
                ) from exc
            self._refresh(force=True)
            return self._versions[newest]

    def retire(self, version: int) -> None:
        with self._lock:
            self._refresh(force=True)
            if version not in self._versions:
                raise UnknownKeyVersion(f"there is no key-encryption key version {version}")
            record = self._versions[version]
            live = [v for v in self._versions.values() if not v.retired]
            if not record.retired and len(live) <= 1:
                raise KeyringError("the only usable key-encryption key cannot be retired")
            try:
                self._call(lambda: self._destroy_version(record))
            except pkcs11.PKCS11Error as exc:
                raise KeyringUnavailable(
                    f"the token '{self.token_label}' could not destroy KEK version {version}: "
                    f"{_describe(exc)}"
                ) from exc
            self._refresh(force=True)

    def _destroy_version(self, record: KekVersion) -> None:
        """Write the tombstone first, then destroy the key (a crash between leaves it retired)."""
        session = self._live_session
        label = f"{self.key_label_prefix}-v{record.version}"
        if not record.retired:
            tombstone = {
                "version": record.version,
                "created": int(record.created_at.timestamp()),
                "retired": int(time.time()),
            }
            session.create_object(
                {
                    Attribute.CLASS: ObjectClass.DATA,
                    Attribute.TOKEN: True,
                    Attribute.PRIVATE: True,
                    Attribute.LABEL: label,
                    Attribute.APPLICATION: TOMBSTONE_APPLICATION,
                    Attribute.VALUE: json.dumps(tombstone).encode(),
                }
            )
        for obj in session.get_objects(
            {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: label}
        ):
            obj.destroy()

    def blind_index(self, domain: str, normalised_value: bytes) -> bytes:
        message = b"rekam-blind-index-v1|" + domain.encode() + b"|" + normalised_value

        def sign() -> bytes:
            if self._blind_key is None:
                raise KeyringUnavailable("the blind-index key is missing from the token")
            return bytes(self._blind_key.sign(message, mechanism=Mechanism.SHA256_HMAC))

        with self._lock:
            try:
                return self._call(sign)[:BLIND_INDEX_BYTES]
            except pkcs11.PKCS11Error as exc:
                raise KeyringUnavailable(
                    f"the token '{self.token_label}' could not compute a blind index: "
                    f"{_describe(exc)}"
                ) from exc


# Helpers -------------------------------------------------------------------------------------


def _check_prefix(prefix: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,48}", prefix):
        raise KeyringError(
            f"the key label prefix {prefix!r} must be 1-48 letters, digits, '.', '_' or '-'"
        )


def _version_of(prefix: str, label: str) -> int | None:
    match = re.fullmatch(re.escape(prefix) + r"-v([1-9][0-9]{0,8})", label)
    return int(match.group(1)) if match else None


def _created_from_id(object_id: bytes, version: int) -> datetime:
    match = re.fullmatch(rb"v([0-9]+)@([0-9]{1,12})", object_id)
    if not match or int(match.group(1)) != version:
        raise KeyringError(
            f"KEK version {version} has an unexpected CKA_ID {object_id!r} (expected v<N>@<time>)"
        )
    return datetime.fromtimestamp(int(match.group(2)), UTC)


def _labels(session: pkcs11.Session) -> Iterator[str]:
    for object_class in (ObjectClass.SECRET_KEY, ObjectClass.DATA):
        for obj in session.get_objects({Attribute.CLASS: object_class}):
            yield str(obj[Attribute.LABEL])


def _protected_template() -> dict[Attribute, Any]:
    return {
        Attribute.TOKEN: True,
        Attribute.PRIVATE: True,
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False,
        Attribute.MODIFIABLE: False,
    }


def _generate_kek(session: pkcs11.Session, prefix: str, version: int) -> None:
    session.generate_key(
        KeyType.AES,
        _KEK_BITS,
        label=f"{prefix}-v{version}",
        id=f"v{version}@{int(time.time())}".encode(),
        store=True,
        capabilities=(
            MechanismFlag.ENCRYPT
            | MechanismFlag.DECRYPT
            | MechanismFlag.WRAP
            | MechanismFlag.UNWRAP
        ),
        template=_protected_template(),
    )


def _one_block(result: bytes | Iterator[bytes]) -> bytes:
    """python-pkcs11 returns an iterator only for iterator input; ours is always bytes."""
    if isinstance(result, bytes):
        return result
    return b"".join(result)


def _describe(exc: BaseException) -> str:
    """python-pkcs11 errors often have an empty message: name the error type instead."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def open_token_session(module_path: str, token_label: str, user_pin: str) -> pkcs11.Session:
    """A read/write session on the token that shares this process's login to it.

    PKCS#11 login state belongs to the process, not the session, and closing a session that
    logged in logs out every session of the process. So the first call per token logs in on a
    session kept open for the life of the process, and every caller gets a session of its own
    that shares that login and can be closed freely. A later call with a different PIN is refused
    (the token cannot check it again without logging everybody out).
    """
    try:
        library = pkcs11.lib(module_path)
    except pkcs11.PKCS11Error as exc:
        raise KeyringUnavailable(
            f"the PKCS#11 module {module_path} cannot be loaded: {_describe(exc)}"
        ) from exc
    try:
        token = library.get_token(token_label=token_label)
    except pkcs11.exceptions.NoSuchToken as exc:
        raise KeyringUnavailable(
            f"no PKCS#11 token labelled '{token_label}' in {module_path} (is the HSM connected, "
            "and the token initialised?)"
        ) from exc
    except pkcs11.PKCS11Error as exc:
        raise KeyringUnavailable(
            f"the PKCS#11 token '{token_label}' cannot be found: {_describe(exc)}"
        ) from exc
    pin_digest = hashlib.sha256(user_pin.encode()).digest()
    with _logins_lock:
        login = _logins.get((module_path, token_label))
        if login is not None and not hmac.compare_digest(login.pin_digest, pin_digest):
            raise KeyringUnavailable(
                f"the PKCS#11 token '{token_label}' refused the PIN (it differs from the PIN "
                "this process logged in with); check the PIN file"
            )
        if login is None:
            _logins[(module_path, token_label)] = _log_in(token, token_label, user_pin, pin_digest)
    try:
        return token.open(rw=True)
    except pkcs11.PKCS11Error as exc:
        raise KeyringUnavailable(
            f"the PKCS#11 token '{token_label}' cannot be opened: {_describe(exc)}"
        ) from exc


@dataclass
class _Login:
    session: pkcs11.Session | None  # None: logged in by other code in this process
    pin_digest: bytes


_logins: dict[tuple[str, str], _Login] = {}
_logins_lock = threading.Lock()


def _log_in(token: pkcs11.Token, token_label: str, user_pin: str, pin_digest: bytes) -> _Login:
    try:
        return _Login(token.open(user_pin=user_pin), pin_digest)
    except _PIN_REFUSED as exc:
        raise KeyringUnavailable(
            f"the PKCS#11 token '{token_label}' refused the PIN ({type(exc).__name__}); check "
            "the PIN file"
        ) from exc
    except pkcs11.exceptions.PinLocked as exc:
        raise KeyringUnavailable(
            f"the PIN of the PKCS#11 token '{token_label}' is locked after too many wrong "
            "attempts; the token's security officer must unlock it"
        ) from exc
    except pkcs11.exceptions.UserAlreadyLoggedIn:
        return _Login(None, pin_digest)
    except pkcs11.PKCS11Error as exc:
        raise KeyringUnavailable(
            f"the PKCS#11 token '{token_label}' cannot be opened: {_describe(exc)}"
        ) from exc


def _forget_login(module_path: str, token_label: str) -> None:
    """After the token was lost: the next session logs in again."""
    with _logins_lock:
        _logins.pop((module_path, token_label), None)
