"""Pair simulated devices through Rekam's pairing API, as the clinic's pairing screen would.

Logs in as a clinician (``POST /api/v1/session``), then for each device generates an X25519 key
pair, sends the public key with the device id it announces (``POST /api/v1/monitor/devices``),
derives the device key from the gateway's answer and checks the confirmation code both sides
compute. The device's private key stays in memory.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID, uuid4

import httpx
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from rekam.monitor.errors import PairingFailed
from rekam.monitor.pairing import DeviceKey, DevicePairing

__all__ = ["PairedDevice", "pair_devices"]


@dataclass(frozen=True)
class PairedDevice:
    key: DeviceKey
    patient_id: str


def _problem(response: httpx.Response) -> str:
    try:
        error = response.json().get("error", {})
        return f"{response.status_code} {error.get('message') or error.get('code')}"
    except ValueError:
        return f"{response.status_code} {response.text[:200]}"


def pair_devices(
    server: str,
    verify: ssl.SSLContext | bool,
    username: str,
    password: str,
    patient_ids: Sequence[str],
    count: int,
    label: str = "simulator",
) -> list[PairedDevice]:
    """Pair ``count`` new devices, spread over ``patient_ids`` in turn."""
    if not patient_ids:
        raise PairingFailed("name at least one patient to pair the simulated devices with")
    try:
        return _pair(server, verify, username, password, patient_ids, count, label)
    except httpx.HTTPError as exc:
        raise PairingFailed(
            f"cannot reach Rekam at {server} to pair the devices ({type(exc).__name__})"
        ) from None


def _pair(
    server: str,
    verify: ssl.SSLContext | bool,
    username: str,
    password: str,
    patient_ids: Sequence[str],
    count: int,
    label: str,
) -> list[PairedDevice]:
    with httpx.Client(base_url=server, verify=verify, timeout=30) as client:
        login = client.post("/api/v1/session", json={"username": username, "password": password})
        if login.status_code != 200:
            raise PairingFailed(f"login as {username} refused: {_problem(login)}")
        csrf = login.json()["csrf_token"]
        paired = []
        for index in range(count):
            device_id = uuid4()
            private = X25519PrivateKey.generate()
            device = DevicePairing(device_id, private)
            patient_id = patient_ids[index % len(patient_ids)]
            response = client.post(
                "/api/v1/monitor/devices",
                headers={"x-csrf-token": csrf},
                json={
                    "patient_id": patient_id,
                    "device_public": base64.b64encode(device.public_bytes()).decode(),
                    "label": f"{label} {index + 1}",
                    "device_id": str(device_id),
                },
            )
            if response.status_code != 201:
                raise PairingFailed(f"pairing refused: {_problem(response)}")
            answer = response.json()
            if UUID(answer["device_id"]) != device_id:
                raise PairingFailed("the server paired another device id than the one announced")
            key = device.derive(base64.b64decode(answer["gateway_public"]))
            if key.confirmation_code != answer["confirmation_code"]:
                raise PairingFailed("the confirmation codes differ: the pairing was tampered with")
            paired.append(PairedDevice(key, patient_id))
        client.delete("/api/v1/session", headers={"x-csrf-token": csrf})
    return paired
