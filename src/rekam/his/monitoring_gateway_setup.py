"""What a monitoring gateway in a process of its own needs from the installation.

:class:`ClinicGatewaySetup` crosses to the analysis process (:mod:`rekam.monitor.gateway_process`)
with the server's settings and there opens the installation — database, keyring — once, so the
child looks up device keys and alarm limits exactly as the server would.
"""

from __future__ import annotations

from dataclasses import dataclass

from rekam.config import Settings
from rekam.his.installation import open_clinic
from rekam.his.monitoring import MonitoringService
from rekam.monitor.gateway_process import GatewayParts

__all__ = ["ClinicGatewaySetup"]


@dataclass(frozen=True)
class ClinicGatewaySetup:
    settings: Settings

    def __call__(self) -> GatewayParts:
        clinic = open_clinic(self.settings)
        service = MonitoringService.for_clinic(clinic)
        return GatewayParts(
            key_lookup=service.key_lookup,
            thresholds_for=service.thresholds_for,
            forget=service.forget_device,
            close=clinic.close,
        )
