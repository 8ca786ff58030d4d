"""A private SoftHSM2 token store for tests: its own config and token directory, never the
system's.

SoftHSM2 reads ``SOFTHSM2_CONF`` and lists its tokens once, when the PKCS#11 module is first
initialised in a process; a token created afterwards is invisible to that process. So a test
process uses one store (``shared_softhsm()``) and creates every token it needs up front, the first
time it asks for it.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)

#: the tokens of the shared store: one for keyrings, one that nothing logs in to (wrong-PIN tests),
#: one for doctors' signing keys
KEYRING_TOKEN = "rekam-keyring-test"
SPARE_TOKEN = "rekam-spare-test"
DOCTOR_TOKEN = "rekam-doctor-test"


@dataclass(frozen=True)
class SoftHsmToken:
    module_path: str
    label: str
    pin: str
    so_pin: str
    conf_path: Path

    def tool_env(self) -> dict[str, str]:
        """Environment for softhsm2-util / pkcs11-tool run against this store."""
        return {**os.environ, "SOFTHSM2_CONF": str(self.conf_path)}


def find_module() -> str | None:
    """The SoftHSM2 PKCS#11 module, or None when SoftHSM2 is not installed."""
    found = next((p for p in MODULE_CANDIDATES if Path(p).is_file()), None)
    if found is None:
        for root in (Path("/usr/lib"), Path("/usr/lib64"), Path("/usr/local/lib")):
            if root.is_dir():
                hit = next(iter(sorted(root.rglob("libsofthsm2.so"))), None)
                if hit is not None:
                    return str(hit)
    return found


def missing_reason() -> str | None:
    """Why SoftHSM2 tests cannot run here (None if they can)."""
    if shutil.which("softhsm2-util") is None:
        return "softhsm2-util is not installed (run scripts/install-system-deps as root)"
    if find_module() is None:
        return "libsofthsm2.so is not installed (run scripts/install-system-deps as root)"
    return None


class SoftHsmStore:
    """A token directory and SoftHSM2 config of our own."""

    def __init__(self, directory: Path, module_path: str) -> None:
        self.directory = directory
        self.module_path = module_path
        self.conf_path = directory / "softhsm2.conf"
        tokens = directory / "tokens"
        tokens.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(
            f"directories.tokendir = {tokens}\n"
            "objectstore.backend = file\n"
            "log.level = ERROR\n"
            "slots.removable = false\n"
        )

    def init_token(self, label: str) -> SoftHsmToken:
        """``softhsm2-util --init-token --free`` with random PINs."""
        pin = secrets.token_hex(8)
        so_pin = secrets.token_hex(8)
        token = SoftHsmToken(self.module_path, label, pin, so_pin, self.conf_path)
        subprocess.run(
            [
                "softhsm2-util", "--init-token", "--free", "--label", label,
                "--so-pin", so_pin, "--pin", pin,
            ],
            env=token.tool_env(), check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        return token


@dataclass(frozen=True)
class SharedSoftHsm:
    store: SoftHsmStore
    keyring_token: SoftHsmToken
    spare_token: SoftHsmToken
    doctor_token: SoftHsmToken


_shared: SharedSoftHsm | None = None
_shared_lock = threading.Lock()


def shared_softhsm() -> SharedSoftHsm:
    """This process's SoftHSM2 store, created on first use and removed at exit.

    Sets ``SOFTHSM2_CONF`` for the process (the module reads it when first loaded: if something
    loaded libsofthsm2 earlier with another config, these tokens are not found and opening them
    fails with KeyringUnavailable naming the token). Raises RuntimeError if SoftHSM2 is missing.
    """
    global _shared
    with _shared_lock:
        if _shared is not None:
            return _shared
        reason = missing_reason()
        if reason is not None:
            raise RuntimeError(reason)
        module = find_module()
        assert module is not None
        directory = Path(tempfile.mkdtemp(prefix="rekam-softhsm-"))
        atexit.register(shutil.rmtree, directory, True)
        store = SoftHsmStore(directory, module)
        keyring_token = store.init_token(KEYRING_TOKEN)
        spare_token = store.init_token(SPARE_TOKEN)
        doctor_token = store.init_token(DOCTOR_TOKEN)
        os.environ["SOFTHSM2_CONF"] = str(store.conf_path)
        _shared = SharedSoftHsm(store, keyring_token, spare_token, doctor_token)
        return _shared
