"""A picklable setup for a gateway in a child process (the child imports it by name, so it
lives here rather than in a test module): keys from a table, alarm limits for short tests."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from rekam.ecg.rhythm import RhythmThresholds
from rekam.monitor.events import MonitorEvent
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
    prefetched: str | None = None
    """A file the child appends each batch of device ids named to ``prefetch`` to, one line each."""
    stored: str | None = None
    """A file the child's own sink writes the events it holds to, as JSON lines, when flushed
    (as the storing sink writes to the database)."""

    def __call__(self) -> GatewayParts:
        if self.fail:
            raise RuntimeError(self.fail)
        table = {UUID(d): DeviceKey.from_storage(UUID(d), raw) for d, raw in self.keys}
        forgotten = self.forgotten

        def forget(device_id: UUID | None) -> None:
            if forgotten is not None:
                with open(forgotten, "a") as out:
                    out.write(f"{device_id}\n")

        prefetched = self.prefetched

        def prefetch(device_ids: Sequence[UUID]) -> None:
            if prefetched is not None:
                with open(prefetched, "a") as out:
                    out.write(" ".join(str(d) for d in device_ids) + "\n")

        def hang(_device_id: UUID) -> DeviceKey | None:
            time.sleep(3600)
            return None

        sink = FileSink(self.stored) if self.stored else None
        return GatewayParts(
            key_lookup=hang if self.hang else table.get,
            thresholds_for=lambda _device: SHORT,
            forget=forget,
            sink=sink,
            flush=sink.flush if sink is not None else lambda: True,
            prefetch=prefetch,
        )


class FileSink:
    def __init__(self, path: str) -> None:
        self.path = path
        self.held: list[dict[str, Any]] = []

    def publish(self, event: MonitorEvent) -> None:
        self.held.append(event.to_json())

    def flush(self) -> bool:
        with open(self.path, "a") as out:
            out.writelines(json.dumps(e) + "\n" for e in self.held)
        self.held = []
        return True


def setup_for(keys: list[DeviceKey], **kwargs: Any) -> TableSetup:
    return TableSetup(tuple((str(k.device_id), k.export_for_storage()) for k in keys), **kwargs)
