"""What a monitoring gateway in a process of its own needs from the installation.

:class:`ClinicGatewaySetup` crosses to the analysis process (:mod:`rekam.monitor.gateway_process`)
with the server's settings and there opens the installation — database, keyring — once, so the
child looks up device keys and alarm limits exactly as the server would, and stores the alerts
and heart-rate trends itself (their encryption and database writes are then off the server's
event loop and its interpreter lock).
"""

from __future__ import annotations

from dataclasses import dataclass

from rekam.config import Settings
from rekam.his.installation import open_clinic
from rekam.his.monitoring import MonitoringService
from rekam.log_format import configure_logging
from rekam.monitor.gateway_process import GatewayParts

__all__ = ["ClinicGatewaySetup"]


@dataclass(frozen=True)
class ClinicGatewaySetup:
    settings: Settings

    def __call__(self) -> GatewayParts:
        configure_logging()  # the server's log format, on the same stderr
        clinic = open_clinic(self.settings)
        service = MonitoringService.for_clinic(clinic)
        sink = service.event_sink()  # the child stores the alerts and trends itself

        def close() -> None:
            service.close()
            clinic.close()

        return GatewayParts(
            key_lookup=service.key_lookup,
            thresholds_for=service.thresholds_for,
            forget=service.forget_device,
            sink=sink,
            flush=sink.flush,
            close=close,
            replay_floors=service.replay_floors(sink),
            prefetch=service.prefetch_devices,
        )
