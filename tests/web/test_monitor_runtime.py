"""The monitoring runtime's book of watched strips: raw samples are built only for devices an
event stream of this process shows (or always, when the bus is shared with other processes)."""

from __future__ import annotations

from uuid import uuid4

import pytest

from rekam.his.installation import Clinic
from rekam.monitor.gateway import Gateway, Verdict
from rekam.monitor.gateway_process import GatewayProcess
from rekam.web.monitor_bus import InProcessBus
from rekam.web.monitor_runtime import MonitorRuntime


def test_a_strip_is_wanted_while_at_least_one_stream_watches_it(clinic: Clinic) -> None:
    runtime = MonitorRuntime(clinic, bus=InProcessBus())
    a, b = uuid4(), uuid4()
    assert not runtime.wants_samples(a)
    runtime.watch_samples([a, b])  # one dashboard watches a and b
    runtime.watch_samples([a])  # another watches a
    assert runtime.wants_samples(a) and runtime.wants_samples(b)
    runtime.unwatch_samples([a, b])  # the first closes
    assert runtime.wants_samples(a)
    assert not runtime.wants_samples(b)
    runtime.unwatch_samples([a])
    assert not runtime.wants_samples(a)
    runtime.close()


def test_with_a_shared_bus_every_strip_is_published(clinic: Clinic) -> None:
    class SharedBus:
        """Stands for the Redis bus: other processes read it, their watchers unknown here."""

        def publish(self, message: object) -> None: ...

        def publish_many(self, messages: object) -> None: ...

        def subscribe(self) -> object:
            raise NotImplementedError

        def announce_registry_change(self, device_id: object) -> None: ...

        def on_registry_change(self, listener: object) -> None: ...

        def close(self) -> None: ...

    runtime = MonitorRuntime(clinic, bus=SharedBus())  # type: ignore[arg-type]
    assert runtime.wants_samples(uuid4())
    runtime.close()


def test_an_analysis_process_that_cannot_start_leaves_the_analysis_here(
    clinic: Clinic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Monitoring must go on: the server analyses and stores the packets itself."""

    def cannot_start(self: GatewayProcess) -> None:
        raise RuntimeError("the monitoring analysis process did not start")

    monkeypatch.setattr(GatewayProcess, "start", cannot_start)
    runtime = MonitorRuntime(clinic, bus=InProcessBus(), analysis_process=True)
    assert isinstance(runtime.gateway, GatewayProcess)
    assert not runtime.service.event_sink().store  # the analysis process was to store
    runtime.start()
    assert isinstance(runtime.gateway, Gateway)
    assert runtime.service.event_sink().store
    assert runtime.gateway.receive(b"\x00" * 60).verdict is Verdict.MALFORMED
    runtime.close()
