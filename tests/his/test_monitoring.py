"""Heart monitoring through the service: pairing and the sealed key registry, limits, the event
sink (alerts merged by episode, per-minute trends, never blocking), reading, acknowledging,
access and audit — on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from sqlalchemy import Engine, event, func, select, update

from rekam.crypto import DecryptionFailed, FieldContext
from rekam.ecg.rhythm import RhythmThresholds
from rekam.his import monitoring_gateway_setup
from rekam.his.audit import verify_audit_chain
from rekam.his.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from rekam.his.installation import Clinic, open_clinic
from rekam.his.monitoring import MonitoringService
from rekam.his.monitoring_gateway_setup import ClinicGatewaySetup
from rekam.his.monitoring_sink import MonitoringSink
from rekam.his.rbac import Actor, Role
from rekam.monitor.events import (
    AlertEvent,
    AlertKind,
    AlertPhase,
    EcgStrip,
    HeartRateReading,
    LiveSamples,
    SignalQualityLevel,
)
from rekam.monitor.packets import decode_packet, encode_packet
from rekam.monitor.pairing import DeviceKey, DevicePairing
from rekam.monitor.replay_floors import ReplayFloor
from rekam.store.models import AuditEntry, HeartRateMinute, MonitorAlert, MonitorDevice, Patient
from support.people import make_patient
from support.servers import make_installation

NURSE = Actor(user_id=None, username="ns.monitor", role=Role.NURSE, source_address="10.0.0.7")
DOCTOR = Actor(user_id=None, username="dr.monitor", role=Role.DOCTOR, source_address="10.0.0.7")
PHARMACIST = Actor(user_id=None, username="ph.monitor", role=Role.PHARMACIST)
ADMIN = Actor(user_id=None, username="admin.monitor", role=Role.ADMIN)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def clinic(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Clinic]:
    overrides = {}
    if request.param == "postgresql":
        overrides["database_url"] = request.getfixturevalue("postgres").create_database()
    inst = make_installation(tmp_path_factory.mktemp("monitoring"), "ecdsa-p256", **overrides)
    clinic = open_clinic(inst.settings)
    yield clinic
    MonitoringService.for_clinic(clinic).close()
    clinic.close()


@pytest.fixture(scope="module")
def monitoring(clinic: Clinic) -> MonitoringService:
    return MonitoringService.for_clinic(clinic)


def new_patient(clinic: Clinic, name: str = "Bambang Susilo") -> str:
    return clinic.patients.register(NURSE, make_patient(name, "M")).id


def pair(
    monitoring: MonitoringService, patient_id: str, label: str = "Sadapan dada"
) -> tuple[UUID, DevicePairing, str]:
    """Pair a simulated device; returns (device id, the device's side, its confirmation code)."""
    device_id, device, on_device = pair_keyed(monitoring, patient_id, label)
    return device_id, device, on_device.confirmation_code


def pair_keyed(
    monitoring: MonitoringService, patient_id: str, label: str = "Sadapan dada"
) -> tuple[UUID, DevicePairing, DeviceKey]:
    """Pair a simulated device; returns (device id, the device's side, the key it derived)."""
    private = X25519PrivateKey.generate()
    result = monitoring.pair_device(
        NURSE, patient_id, private.public_key().public_bytes_raw(), label
    )
    device = DevicePairing(result.device_id, private)
    return result.device_id, device, device.derive(result.gateway_public)


@contextlib.contextmanager
def statements_on(target: object, thread: int | None = None) -> Iterator[list[str]]:
    """The SQL statements run on ``target`` (an engine, or ``Engine`` for every engine) while
    inside; only those run by ``thread`` when it is given."""
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if thread is None or threading.get_ident() == thread:
            statements.append(statement)

    event.listen(target, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(target, "before_cursor_execute", count)


def audit_actions(clinic: Clinic, patient_id: str) -> list[str]:
    with clinic.database.transaction() as session:
        return list(
            session.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.patient_id == patient_id)
                .order_by(AuditEntry.seq)
            )
        )


def make_old(clinic: Clinic, patient_id: str) -> None:
    """Registered three days ago, no consultation: no longer in a nurse's care."""
    with clinic.database.transaction(write=True) as session:
        session.execute(
            update(Patient)
            .where(Patient.id == patient_id)
            .values(created_at=datetime.now(UTC) - timedelta(days=3))
            .execution_options(synchronize_session=False)
        )


# Pairing and the key registry ------------------------------------------------------------------


def test_pairing_gives_device_and_gateway_the_same_key_and_code(
    clinic: Clinic, monitoring: MonitoringService
) -> None:
    patient_id = new_patient(clinic)
    private = X25519PrivateKey.generate()
    result = monitoring.pair_device(
        NURSE, patient_id, private.public_key().public_bytes_raw(), "Sadapan dada"
    )
    on_device = DevicePairing(result.device_id, private).derive(result.gateway_public)
    assert result.confirmation_code == on_device.confirmation_code
    assert len(result.confirmation_code) == 6 and result.confirmation_code.isdigit()
    key = monitoring.key_lookup(result.device_id)
    assert key is not None and key.same_key_as(on_device)
    # a packet the device seals opens with what the registry hands the gateway
    raw = encode_packet(on_device, result.device_id, 1, int(time.time() * 1000), 250, [10, -20, 30])
    assert decode_packet(raw, monitoring.key_lookup).samples.tolist() == [10, -20, 30]
    assert audit_actions(clinic, patient_id)[-1] == "monitor.device_pair"


def test_the_stored_key_is_sealed_under_the_patient_and_bound_to_the_device(
    clinic: Clinic, monitoring: MonitoringService
) -> None:
    patient_id = new_patient(clinic)
    device_id, _, _ = pair(monitoring, patient_id)
    key = monitoring.key_lookup(device_id)
    assert key is not None
    key_bytes = key.export_for_storage()
    with clinic.database.transaction() as session:
        row = session.get(MonitorDevice, str(device_id))
        assert row is not None and row.key_enc is not None
        assert key_bytes not in row.key_enc and key_bytes.hex().encode() not in row.key_enc
        sealed = row.key_enc
    opened = clinic.fields.decrypt_field(
        sealed, FieldContext("monitor_devices", "key", str(device_id), patient_id)
    )
    assert opened == key_bytes
    with pytest.raises(DecryptionFailed):  # moved to another device row: refused
        clinic.fields.decrypt_field(
            sealed, FieldContext("monitor_devices", "key", str(uuid4()), patient_id)
        )
    assert key_bytes.hex() not in repr(key)


def test_device_ids_can_be_announced_by_the_device_and_are_paired_once(
    clinic: Clinic, monitoring: MonitoringService
) -> None:
    patient_id = new_patient(clinic)
    device_id = uuid4()
    private = X25519PrivateKey.generate()
    result = monitoring.pair_device(
        NURSE, patient_id, private.public_key().public_bytes_raw(), "Holter", device_id=device_id
    )
    assert result.device_id == device_id
    with pytest.raises(Conflict):
        monitoring.pair_device(
            NURSE,
            patient_id,
            private.public_key().public_bytes_raw(),
            "Holter",
            device_id=device_id,
        )
    monitoring.unpair(NURSE, device_id)
    # after unpairing, the same device pairs again with a new key
    again = monitoring.pair_device(
        NURSE,
        patient_id,
        X25519PrivateKey.generate().public_key().public_bytes_raw(),
        "Holter 2",
        device_id=device_id,
    )
    new_key = monitoring.key_lookup(device_id)
    assert new_key is not None
    assert not new_key.same_key_as(DevicePairing(device_id, private).derive(again.gateway_public))


@pytest.mark.parametrize("public", [b"", b"\x01" * 31, b"\x00" * 32, b"\x01" * 33])
def test_unusable_public_keys_are_refused_and_nothing_is_stored(
    clinic: Clinic, monitoring: MonitoringService, public: bytes
) -> None:
    patient_id = new_patient(clinic)
    with pytest.raises(ValidationFailed) as refused:
        monitoring.pair_device(NURSE, patient_id, public, "Sadapan")
    assert refused.value.key == "monitor.public_key_invalid"
    with clinic.database.transaction() as session:
        count = session.scalar(
            select(func.count())
            .select_from(MonitorDevice)
            .where(MonitorDevice.patient_id == patient_id)
        )
    assert count == 0


@pytest.mark.parametrize("label", ["", "   ", "x" * 101, "Bed\x00 3"])
def test_bad_labels_are_refused(clinic: Clinic, monitoring: MonitoringService, label: str) -> None:
    patient_id = new_patient(clinic)
    with pytest.raises(ValidationFailed):
        monitoring.pair_device(
            NURSE, patient_id, X25519PrivateKey.generate().public_key().public_bytes_raw(), label
        )


def test_pairing_needs_the_permission_and_a_care_relationship(
    clinic: Clinic, monitoring: MonitoringService
) -> None:
    public = X25519PrivateKey.generate().public_key().public_bytes_raw()
    patient_id = new_patient(clinic)
    with pytest.raises(PermissionDenied):
        monitoring.pair_device(PHARMACIST, patient_id, public, "Sadapan")
    with pytest.raises(PermissionDenied):
        monitoring.pair_device(ADMIN, patient_id, public, "Sadapan")
    make_old(clinic, patient_id)
    with pytest.raises(PermissionDenied) as refused:
        monitoring.pair_device(NURSE, patient_id, public, "Sadapan")
    assert refused.value.key == "record.no_care_relationship"
    with pytest.raises(NotFound):
        monitoring.pair_device(NURSE, str(uuid4()), public, "Sadapan")


def test_unknown_and_unpaired_devices_have_no_key_and_unpairing_takes_effect_at_once(
    clinic: Clinic, monitoring: MonitoringService
) -> None:
    assert monitoring.key_lookup(uuid4()) is None
    patient_id = new_patient(clinic)
    device_id, _, _ = pair(monitoring, patient_id)
    assert monitoring.key_lookup(device_id) is not None
    view = monitoring.unpair(NURSE, device_id)
    assert not view.active
    assert monitoring.key_lookup(device_id) is None
    with clinic.database.transaction() as session:
        row = session.get(MonitorDevice, str(device_id))
        assert row is not None and row.key_enc is None  # the key is destroyed
    assert audit_actions(clinic, patient_id)[-1] == "monitor.device_unpair"
    with pytest.raises(NotFound):
        monitoring.unpair(NURSE, "not-a-uuid")
    with pytest.raises(NotFound):
        monitoring.unpair(NURSE, uuid4())


def test_key_lookups_are_served_from_memory(clinic: Clinic, monitoring: MonitoringService) -> None:
    patient_id = new_patient(clinic)
    device_id, _, _ = pair(monitoring, patient_id)
    monitoring.key_lookup(device_id)
    loads = monitoring._registry.loads
    started = time.perf_counter()
    for _ in range(10_000):
        assert monitoring.key_lookup(device_id) is not None
    elapsed = time.perf_counter() - started
    assert monitoring._registry.loads == loads  # no database access
    assert elapsed < 0.5  # well under 50 µs per lookup
    reads = monitoring._registry.known_reads
    stranger = uuid4()
    for _ in range(1000):  # a flood from an unknown device costs no query per packet
        assert monitoring.key_lookup(stranger) is None
    for _ in range(1000):  # nor does a flood of made-up device ids
        assert monitoring.key_lookup(uuid4()) is None
    assert monitoring._registry.loads == loads
    assert monitoring._registry.known_reads <= reads + 1  # the set of paired ids, once at most
    other = new_patient(clinic)  # a device paired meanwhile, in this process, is known at once
    paired_now, _, _ = pair(monitoring, other)
    assert monitoring.key_lookup(paired_now) is not None
    assert {device_id, paired_now} <= monitoring._paired_device_ids()
    monitoring.unpair(NURSE, str(paired_now))
    assert paired_now not in monitoring._paired_device_ids()  # the set holds paired devices only
    assert monitoring.key_lookup(paired_now) is None


def test_an_erased_patients_devices_have_no_key(
    clinic: Clinic, monitoring: MonitoringService
) -> None:
    patient_id = new_patient(clinic)
    device_id, _, _ = pair(monitoring, patient_id)
    clinic.patients.erase(ADMIN, patient_id, "permintaan pasien")
    monitoring._registry.forget(device_id)
    assert monitoring.key_lookup(device_id) is None


def test_devices_that_connect_together_are_loaded_in_one_query(
    clinic: Clinic, monitoring: MonitoringService, caplog: pytest.LogCaptureFixture
) -> None:
    patients = [new_patient(clinic, f"Pasien Bersama {n}") for n in range(4)]
    devices = [pair_keyed(monitoring, p) for p in patients for _ in range(2)]
    monitoring.set_thresholds(DOCTOR, patients[0], MonitoringService.thresholds_from(40, 120, 5, 8))
    unpaired = devices[2][0]
    monitoring.unpair(NURSE, str(unpaired))
    clinic.patients.erase(ADMIN, patients[3], "permintaan pasien")
    erased = {devices[6][0], devices[7][0]}
    live = [(d, key) for d, _, key in devices if d != unpaired and d not in erased]
    fresh = MonitoringService(clinic.database, clinic.fields)  # e.g. a just-started gateway
    try:
        with statements_on(clinic.database.engine) as statements:
            fresh.prefetch_devices([d for d, _, _ in devices] + [uuid4()])
            on_devices = [s for s in statements if "monitor_devices" in s]
            assert len(on_devices) == 2  # the set of paired ids, then the devices: one query
            assert fresh._registry.loads == 1
            statements.clear()
            for device_id, key in live:  # each key opens what its device sealed
                packet = encode_packet(key, device_id, 1, 1_000, 250, [1, 2, 3])
                assert decode_packet(packet, fresh.key_lookup, now_ms=1_000).sequence == 1
            assert fresh.thresholds_for(devices[0][0]) == RhythmThresholds(40.0, 120.0, 5.0, 8.0)
            assert fresh.thresholds_for(devices[4][0]) is None  # no limits set: the defaults
            for device_id in {unpaired, *erased}:
                assert fresh.key_lookup(device_id) is None
            # an erased patient's devices are left out by the query, not found broken on opening
            assert "cannot be opened" not in caplog.text
            assert statements == []  # all of it answered from memory
            assert fresh._registry.loads == 1
    finally:
        fresh.close()


def test_the_analysis_process_fetches_devices_seen_together_in_one_query(
    clinic: Clinic, monitoring: MonitoringService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(monitoring_gateway_setup, "configure_logging", lambda: None)
    patient_id = new_patient(clinic, "Pasien Proses")
    devices = [pair_keyed(monitoring, patient_id) for _ in range(3)]
    parts = ClinicGatewaySetup(clinic.settings)()  # what the analysis process builds
    try:
        with statements_on(Engine) as statements:
            assert parts.prefetch is not None
            parts.prefetch([d for d, _, _ in devices])
            assert sum("monitor_devices" in s for s in statements) == 2
            statements.clear()
            for device_id, _, key in devices:
                packet = encode_packet(key, device_id, 1, 1_000, 250, [1, 2, 3])
                assert decode_packet(packet, parts.key_lookup, now_ms=1_000).sequence == 1
            assert statements == []
    finally:
        parts.close()


def stored_sequence(clinic: Clinic, device_id: UUID) -> int | None:
    with clinic.database.transaction() as session:
        row = session.get(MonitorDevice, str(device_id))
        assert row is not None
        return row.accepted_sequence


def test_replay_floors_are_kept_per_pairing_and_only_go_up(
    clinic: Clinic, monitoring: MonitoringService
) -> None:
    patient_id = new_patient(clinic)
    device_id, _, _ = pair(monitoring, patient_id)
    sink = monitoring.event_sink()
    floors = monitoring.replay_floors(sink)
    first = floors.floor(device_id)
    assert first is not None and first.highest is None
    floors.save([(device_id, ReplayFloor(first.pairing, 120))])
    floors.save([(device_id, ReplayFloor(first.pairing, 90))])  # lower: it never goes down
    assert sink.flush()
    assert stored_sequence(clinic, device_id) == 120
    monitoring.forget_device(device_id)  # as a restarted process: read from the database
    assert floors.floor(device_id) == ReplayFloor(first.pairing, 120)

    # paired again: the floor starts afresh, and one saved late for the old pairing is ignored
    monitoring.unpair(NURSE, device_id)
    floors.save([(device_id, ReplayFloor(first.pairing, 130))])  # unpaired: ignored too
    assert sink.flush()
    assert stored_sequence(clinic, device_id) == 120
    monitoring.pair_device(
        NURSE,
        patient_id,
        X25519PrivateKey.generate().public_key().public_bytes_raw(),
        "Sadapan baru",
        device_id=device_id,
    )
    assert stored_sequence(clinic, device_id) is None
    floors.save([(device_id, ReplayFloor(first.pairing, 500))])
    assert sink.flush()
    assert stored_sequence(clinic, device_id) is None
    second = floors.floor(device_id)
    assert second is not None and second.highest is None and second.pairing != first.pairing
    floors.save([(device_id, ReplayFloor(second.pairing, 7))])
    assert sink.flush()
    assert stored_sequence(clinic, device_id) == 7
    assert floors.floor(uuid4()) is None


# Limits ------------------------------------------------------------------------------------------


def test_thresholds_are_per_patient_and_sealed(
    clinic: Clinic, monitoring: MonitoringService
) -> None:
    patient_id = new_patient(clinic)
    other_id = new_patient(clinic, "Agus Salim")
    device_id, _, _ = pair(monitoring, patient_id)
    other_device, _, _ = pair(monitoring, other_id)
    assert monitoring.thresholds_for(device_id) is None
    limits = MonitoringService.thresholds_from(40, 120, 5, 8)
    monitoring.set_thresholds(DOCTOR, patient_id, limits)
    assert monitoring.thresholds_for(device_id) == RhythmThresholds(40.0, 120.0, 5.0, 8.0)
    assert monitoring.thresholds_for(other_device) is None
    assert monitoring.thresholds_for(uuid4()) is None
    with pytest.raises(ValidationFailed):
        MonitoringService.thresholds_from(120, 40, 5, 8)
    with pytest.raises(ValidationFailed):
        MonitoringService.thresholds_from(50, 60, 10, 8)
    with pytest.raises(PermissionDenied):
        monitoring.set_thresholds(PHARMACIST, patient_id, limits)
    assert audit_actions(clinic, patient_id)[-1] == "monitor.thresholds_set"


def test_new_limits_count_at_once_here_and_other_devices_wait_for_no_query(
    clinic: Clinic, monitoring: MonitoringService
) -> None:
    changed = new_patient(clinic, "Pasien Batas")
    others = new_patient(clinic, "Pasien Lain")
    changed_device, _, _ = pair(monitoring, changed)
    other_devices = [pair(monitoring, others)[0] for _ in range(3)]
    for device_id in [changed_device, *other_devices]:
        assert monitoring.thresholds_for(device_id) is None  # held in memory now
    loads = monitoring._registry.loads
    with statements_on(clinic.database.engine, threading.get_ident()) as on_this_thread:
        limits = MonitoringService.thresholds_from(45, 110, 5, 6)
        monitoring.set_thresholds(DOCTOR, changed, limits)
        on_this_thread.clear()
        for device_id in other_devices:  # answered from memory, while reloaded in the background
            assert monitoring.thresholds_for(device_id) is None
        assert on_this_thread == []
        assert monitoring.thresholds_for(changed_device) == RhythmThresholds(45.0, 110.0, 5.0, 6.0)
    deadline = time.monotonic() + 10
    while monitoring._registry.loads < loads + 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert monitoring._registry.loads >= loads + 2  # the changed device, and the reload batch


# The event sink ----------------------------------------------------------------------------------


def strip(start_ms: int, n: int = 1500) -> EcgStrip:
    return EcgStrip(250, start_ms, tuple(((i * 37) % 2001) - 1000 for i in range(n)))


def alert_event(
    device_id: UUID, episode: UUID, phase: AlertPhase, bpm: float, t0: int
) -> AlertEvent:
    return AlertEvent(
        episode_id=episode,
        device_id=device_id,
        kind=AlertKind.TACHYCARDIA,
        phase=phase,
        bpm=bpm,
        started_ms=t0,
        confirmed_ms=t0 + 10_000,
        ended_ms=t0 + 60_000 if phase is AlertPhase.ENDED else None,
        strip=strip(t0 + 4_000) if phase is AlertPhase.RAISED else None,
    )


def test_alert_phases_of_one_episode_are_stored_as_one_alert_with_its_sealed_strip(
    clinic: Clinic, monitoring: MonitoringService
) -> None:
    patient_id = new_patient(clinic)
    device_id, _, _ = pair(monitoring, patient_id)
    sink = monitoring.event_sink()
    episode = uuid4()
    t0 = 1_795_000_000_000
    sink.publish(alert_event(device_id, episode, AlertPhase.RAISED, 128.0, t0))
    sink.publish(alert_event(device_id, episode, AlertPhase.UPDATED, 151.5, t0))
    sink.publish(alert_event(device_id, episode, AlertPhase.UPDATED, 140.0, t0))  # less extreme
    sink.publish(LiveSamples(device_id, 250, t0, (1, 2, 3)))  # not stored
    assert sink.flush()
    with clinic.database.transaction() as session:
        rows = list(
            session.scalars(select(MonitorAlert).where(MonitorAlert.patient_id == patient_id))
        )
    assert len(rows) == 1 and rows[0].status == "open"
    assert b"tachycardia" not in rows[0].details_enc and rows[0].strip_enc is not None
    [listed] = monitoring.alerts(NURSE, patient_id=patient_id)
    assert (listed.kind, listed.bpm, listed.status) == ("tachycardia", 151.5, "open")
    assert listed.started_at == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=t0)
    assert listed.confirmed_at - listed.started_at == timedelta(seconds=10)
    assert listed.strip is None  # lists do not carry strips
    detail = monitoring.alert(NURSE, listed.id)
    assert detail.strip == strip(t0 + 4_000)
    sink.publish(alert_event(device_id, episode, AlertPhase.ENDED, 151.5, t0))
    assert sink.flush()
    ended = monitoring.alert(NURSE, listed.id)
    assert ended.status == "ended" and ended.ended_at is not None
    assert ended.strip == strip(t0 + 4_000)  # the strip of the raised phase stays
    actions = audit_actions(clinic, patient_id)
    assert actions.count("monitor.alert_raise") == 1
    assert actions.count("monitor.alert_updated") == 2 and "monitor.alert_ended" in actions


def test_an_alert_whose_raised_phase_was_missed_is_still_stored(
    clinic: Clinic, monitoring: MonitoringService
) -> None:
    patient_id = new_patient(clinic)
    device_id, _, _ = pair(monitoring, patient_id)
    sink = monitoring.event_sink()
    sink.publish(alert_event(device_id, uuid4(), AlertPhase.UPDATED, 44.0, 1_795_000_100_000))
    assert sink.flush()
    [alert] = monitoring.alerts(NURSE, patient_id=patient_id)
    assert alert.bpm == 44.0 and alert.strip is None


def test_events_of_unknown_devices_are_dropped_and_counted(
    clinic: Clinic, monitoring: MonitoringService
) -> None:
    sink = monitoring.event_sink()
    before = sink.counters["dropped_unpaired"]
    with clinic.database.transaction() as session:
        alerts_before = session.scalar(select(func.count()).select_from(MonitorAlert))
    sink.publish(alert_event(uuid4(), uuid4(), AlertPhase.RAISED, 130.0, 1_795_000_000_000))
    sink.publish(reading(uuid4(), 1_795_000_000_000, 80.0))
    assert sink.flush()
    assert sink.counters["dropped_unpaired"] == before + 2
    with clinic.database.transaction() as session:
        assert session.scalar(select(func.count()).select_from(MonitorAlert)) == alerts_before


def reading(device_id: UUID, time_ms: int, bpm: float | None) -> HeartRateReading:
    return HeartRateReading(
        device_id=device_id,
        time_ms=time_ms,
        bpm=bpm,
        rhythm="normal" if bpm is not None else "no reliable reading",
        quality=SignalQualityLevel.GOOD if bpm is not None else SignalQualityLevel.NO_READING,
        irregular=False,
    )


def test_readings_become_a_per_minute_trend_merged_across_flushes(
    clinic: Clinic, monitoring: MonitoringService
) -> None:
    patient_id = new_patient(clinic)
    device_id, _, _ = pair(monitoring, patient_id)
    sink = monitoring.event_sink()
    minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=5)
    base = int(minute.timestamp() * 1000)
    first = [70.0, 72.0, 74.0]
    for i, bpm in enumerate(first):
        sink.publish(reading(device_id, base + i * 1000, bpm))
    sink.publish(reading(device_id, base + 5000, None))  # leads off
    sink.publish(reading(device_id, base + 61_000, 90.0))  # the next minute
    assert sink.flush()
    second = [60.0, 80.0]
    for i, bpm in enumerate(second):
        sink.publish(reading(device_id, base + 20_000 + i * 1000, bpm))
    assert sink.flush()
    trend = monitoring.trend(NURSE, patient_id, minute - timedelta(minutes=1))
    assert [p.minute for p in trend.points] == [minute, minute + timedelta(minutes=1)]
    one, two = trend.points
    values = first + second
    assert one.readings == 5 and one.no_reading == 1
    assert one.low == 60.0 and one.high == 80.0
    assert one.mean == pytest.approx(sum(values) / len(values))
    assert (two.readings, two.mean) == (1, 90.0)
    with clinic.database.transaction() as session:
        stored = session.scalars(
            select(HeartRateMinute.summary_enc).where(HeartRateMinute.patient_id == patient_id)
        ).all()
    assert len(stored) == 2 and all(s.startswith(b"RK") for s in stored)  # sealed values
    assert monitoring.trend(NURSE, patient_id, minute + timedelta(minutes=1)).points == (two,)
    tiles = {t.patient_id: t for t in monitoring.tiles(NURSE)}
    assert tiles[patient_id].last_minute == two
    latest = tiles[patient_id].reading
    assert latest is not None and latest.bpm == 80.0


def test_publish_never_blocks_and_counts_what_it_had_to_drop(clinic: Clinic) -> None:
    calls = 0

    def slow_patient_of(device_id: UUID) -> str | None:  # a database that cannot keep up
        nonlocal calls
        calls += 1
        time.sleep(0.2)
        return None

    sink = MonitoringSink(clinic.database, clinic.fields, slow_patient_of, max_queued=100)
    try:
        device_id = uuid4()
        started = time.perf_counter()
        for i in range(5000):
            sink.publish(reading(device_id, 1_795_000_000_000 + i, 70.0))
        elapsed = time.perf_counter() - started
        assert elapsed < 0.5  # 5000 publishes while the writer is stuck: no waiting
        assert sink.counters["dropped_queue_full"] >= 5000 - 101 - 1
        assert sink.latest[device_id].time_ms == 1_795_000_000_000 + 4999
    finally:
        sink.close(timeout=0.1)


def test_batches_are_bounded_in_events_and_stored_like_single_events(clinic: Clinic) -> None:
    release = threading.Event()

    def stuck_patient_of(device_id: UUID) -> str | None:  # the writer waits until released
        release.wait(10)
        return None

    sink = MonitoringSink(clinic.database, clinic.fields, stuck_patient_of, max_queued=100)
    try:
        device_id = uuid4()
        batches = [
            [reading(device_id, 1_795_000_000_000 + 60 * b + i, 70.0) for i in range(60)]
            for b in range(3)
        ]
        for batch in batches:
            sink.publish_many(batch)
        # 60 fit, then 40 of the next 60, then none: 100 waiting at most
        assert sink.counters["dropped_queue_full"] == 80
        assert sink.latest[device_id].time_ms == 1_795_000_000_000 + 179
        release.set()
        assert sink.flush()
        assert sink.counters["dropped_unpaired"] == 100  # every kept reading reached the writer
        sink.publish_many(batches[0])  # room again once written
        assert sink.flush()
        assert sink.counters["dropped_unpaired"] == 160
        assert sink.counters["dropped_queue_full"] == 80
    finally:
        release.set()
        sink.close(timeout=1)


def test_a_sink_that_does_not_store_keeps_only_the_latest_readings(
    clinic: Clinic, monitoring: MonitoringService
) -> None:
    """The server beside an analysis process: the tiles need the latest readings, the storing
    is the analysis process's."""
    patient_id = new_patient(clinic)
    device_id, _, _ = pair(monitoring, patient_id)
    sink = monitoring.event_sink()
    sink.store = False
    try:
        sink.publish(reading(device_id, 1_795_000_000_000, 130.0))
        sink.publish(alert_event(device_id, uuid4(), AlertPhase.RAISED, 130.0, 1_795_000_000_000))
        assert sink.flush()
        assert sink.latest[device_id].bpm == 130.0
        assert monitoring.alerts(NURSE, patient_id=patient_id) == []
        with clinic.database.transaction() as session:
            minutes = session.scalar(
                select(func.count())
                .select_from(HeartRateMinute)
                .where(HeartRateMinute.patient_id == patient_id)
            )
        assert minutes == 0
        tile = {t.patient_id: t for t in monitoring.tiles(NURSE)}[patient_id]
        assert tile.reading is not None and tile.reading.bpm == 130.0
    finally:
        sink.store = True  # the sink is the module's, shared with the other tests


def test_a_failing_write_does_not_stop_the_writer(
    clinic: Clinic, monitoring: MonitoringService
) -> None:
    patient_id = new_patient(clinic)
    device_id, _, _ = pair(monitoring, patient_id)
    sink = monitoring.event_sink()
    errors = sink.counters["writer_errors"]
    bad = alert_event(device_id, uuid4(), AlertPhase.RAISED, float("nan"), 1_795_000_000_000)
    bad = replace(bad, kind="nonsense")  # type: ignore[arg-type]
    sink.publish(bad)
    good = uuid4()
    sink.publish(alert_event(device_id, good, AlertPhase.RAISED, 125.0, 1_795_000_200_000))
    assert sink.flush()
    assert sink.counters["writer_errors"] == errors + 1
    assert [a.episode_id for a in monitoring.alerts(NURSE, patient_id=patient_id)] == [str(good)]


# Reading, acknowledging, access ------------------------------------------------------------------


def test_acknowledging_an_alert_once(clinic: Clinic, monitoring: MonitoringService) -> None:
    patient_id = new_patient(clinic)
    device_id, _, _ = pair(monitoring, patient_id)
    sink = monitoring.event_sink()
    sink.publish(alert_event(device_id, uuid4(), AlertPhase.RAISED, 45.0, 1_795_000_300_000))
    assert sink.flush()
    [alert] = monitoring.alerts(NURSE, patient_id=patient_id, unacknowledged_only=True)
    with pytest.raises(PermissionDenied):
        monitoring.acknowledge(PHARMACIST, alert.id)
    done = monitoring.acknowledge(NURSE, alert.id)
    assert done.acknowledged_by == "ns.monitor" and done.acknowledged_at is not None
    with pytest.raises(Conflict) as again:
        monitoring.acknowledge(DOCTOR, alert.id)
    assert again.value.key == "monitor.already_acknowledged"
    assert monitoring.alerts(NURSE, patient_id=patient_id, unacknowledged_only=True) == []
    with pytest.raises(NotFound):
        monitoring.acknowledge(NURSE, str(uuid4()))
    with pytest.raises(NotFound):
        monitoring.acknowledge(NURSE, "x" * 500)
    assert audit_actions(clinic, patient_id)[-2] == "monitor.alert_acknowledge"


def test_patients_outside_the_care_relationship_are_left_out(
    clinic: Clinic, monitoring: MonitoringService
) -> None:
    in_care = new_patient(clinic, "Dewi Lestari")
    not_in_care = new_patient(clinic, "Rudi Hartono")
    mine, _, _ = pair(monitoring, in_care)
    theirs, _, _ = pair(monitoring, not_in_care)
    sink = monitoring.event_sink()
    sink.publish(alert_event(mine, uuid4(), AlertPhase.RAISED, 130.0, 1_795_000_400_000))
    sink.publish(alert_event(theirs, uuid4(), AlertPhase.RAISED, 131.0, 1_795_000_400_000))
    assert sink.flush()
    make_old(clinic, not_in_care)
    shown = {t.patient_id for t in monitoring.tiles(NURSE)}
    assert in_care in shown and not_in_care not in shown
    listed = {a.patient_id for a in monitoring.alerts(NURSE, limit=200)}
    assert in_care in listed and not_in_care not in listed
    [hidden] = [a for a in monitoring.alerts(DOCTOR, limit=200) if a.patient_id == not_in_care] or [
        None
    ]
    assert hidden is None  # the doctor is not caring for them either
    visible = monitoring.devices_visible_to(NURSE)
    assert mine in visible and theirs not in visible
    with pytest.raises(PermissionDenied):
        monitoring.devices_visible_to(PHARMACIST)
    with pytest.raises(PermissionDenied):
        monitoring.trend(NURSE, not_in_care, datetime.now(UTC) - timedelta(hours=1))
    with pytest.raises(PermissionDenied):
        monitoring.alerts(PHARMACIST)
    with clinic.database.transaction() as session:
        assert verify_audit_chain(session).intact
