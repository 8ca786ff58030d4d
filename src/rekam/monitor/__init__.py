"""Wearable ECG device protocol: pairing, sealed sample packets, replay protection and the
Bluetooth Heart Rate Measurement characteristic. Transports (WebSocket, MQTT) come later and only
move bytes; every rule about what a device may send lives here.

The byte format is described for firmware authors in ``docs/device-protocol.md``.
"""

from rekam.monitor.errors import (
    MalformedPacket,
    MonitorError,
    PacketAuthenticationFailed,
    PairingFailed,
    ReplayedPacket,
    StalePacket,
    UnknownDevice,
)
from rekam.monitor.heart_rate_measurement import (
    HEART_RATE_MEASUREMENT_UUID,
    HeartRateMeasurement,
    SensorContact,
    parse_heart_rate_measurement,
)
from rekam.monitor.packets import KeyLookup, Packet, decode_packet, encode_packet
from rekam.monitor.pairing import DeviceKey, DevicePairing, GatewayPairing
from rekam.monitor.replay_floors import ReplayFloor, ReplayFloors
from rekam.monitor.replay_window import DEFAULT_WINDOW_SIZE, ReplayWindows, WindowCounters

__all__ = [
    "DEFAULT_WINDOW_SIZE",
    "HEART_RATE_MEASUREMENT_UUID",
    "DeviceKey",
    "DevicePairing",
    "GatewayPairing",
    "HeartRateMeasurement",
    "KeyLookup",
    "MalformedPacket",
    "MonitorError",
    "Packet",
    "PacketAuthenticationFailed",
    "PairingFailed",
    "ReplayFloor",
    "ReplayFloors",
    "ReplayWindows",
    "ReplayedPacket",
    "SensorContact",
    "StalePacket",
    "UnknownDevice",
    "WindowCounters",
    "decode_packet",
    "encode_packet",
    "parse_heart_rate_measurement",
]
