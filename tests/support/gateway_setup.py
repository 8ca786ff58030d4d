"""A picklable setup for a gateway in a child process (the child imports it by name, so it
lives here rather than in a test module): keys from a table, alarm limits for short tests."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from rekam.ecg.rhythm import RhythmThresholds
from rekam.monitor.gateway_process import GatewayParts
from rekam.monitor.pairing import DeviceKey

SHORT = RhythmThresholds(min_duration_s=3.0)


@dataclass(frozen=True)
class TableSetup:
    """The child's keys (crossing as raw bytes, as the registry stores them). ``forgotten``: a
    file the child appends each forgotten device id to, so the test can see the call."""

    keys: tuple[tuple[str, bytes], ...]
    forgotten: str | None = None
    fail: str | None = None
    hang: bool = False
    """The child's key lookup never returns (a child that hangs)."""

    def __call__(self) -> GatewayParts:
        if self.fail:
            raise RuntimeError(self.fail)
        table = {UUID(d): DeviceKey.from_storage(UUID(d), raw) for d, raw in self.keys}
        forgotten = self.forgotten

        def forget(device_id: UUID | None) -> None:
            if forgotten is not None:
                with open(forgotten, "a") as out:
                    out.write(f"{device_id}\n")

        def hang(_device_id: UUID) -> DeviceKey | None:
            time.sleep(3600)
            return None

        return GatewayParts(
            key_lookup=hang if self.hang else table.get,
            thresholds_for=lambda _device: SHORT,
            forget=forget,
        )


def setup_for(keys: list[DeviceKey], **kwargs: Any) -> TableSetup:
    return TableSetup(tuple((str(k.device_id), k.export_for_storage()) for k in keys), **kwargs)
