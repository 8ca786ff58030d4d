"""One DIMSE association for many operations, against a real Orthanc behind a counting relay:
how many associations were really opened, replies never mixed up between operations, no 40 ms
stall per message, a dropped association replaced, refusals and a dead peer reported clearly."""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Iterator

import pydicom
import pytest
from pynetdicom.dimse_primitives import C_FIND

from rekam.dicom import dataset_to_bytes, verify_dataset
from rekam.dicom.pacs import PacsRefused, PacsUnavailable, StudyQuery
from rekam.dicom.pacs.dimse_session import DimseSession
from rekam.dicom.pacs.orthanc_dimse import OrthancDimse
from support.orthanc import CALLING_AET, ORTHANC_AET, OrthancServer
from support.pacs_objects import ecg_object
from support.servers import free_port
from support.tcp_relay import TcpRelay, tcp_relay

from .conftest import Pki

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


@pytest.fixture
def relay(orthanc: OrthancServer) -> Iterator[TcpRelay]:
    with tcp_relay(orthanc.dicom_port) as relay:
        yield relay


def via(relay: TcpRelay, calling: str = CALLING_AET) -> OrthancDimse:
    return OrthancDimse("127.0.0.1", relay.port, called_aet=ORTHANC_AET, calling_aet=calling)


def _orthanc_file(server: OrthancServer, sop_instance_uid: str) -> bytes:
    """The stored object as Orthanc's REST API gives it (independent of DIMSE)."""
    with server.rest() as client:
        found = client.post(
            "/tools/find",
            json={"Level": "Instance", "Query": {"SOPInstanceUID": sop_instance_uid}},
        ).json()
        assert len(found) == 1, f"Orthanc does not hold {sop_instance_uid}"
        return client.get(f"/instances/{found[0]}/file").content


def _data_set(data: bytes) -> bytes:
    """The encoded data set after the Part 10 header and file meta group (which each side
    writes for itself: DIMSE sends no file meta)."""
    assert data[128:132] == b"DICM" and data[132:134] == b"\x02\x00"
    meta_length = int.from_bytes(data[140:144], "little")  # (0002,0000) UL, explicit VR
    return data[144 + meta_length :]


def test_a_batch_uses_one_association_and_every_object_comes_back(
    orthanc: OrthancServer, relay: TcpRelay, pki: Pki
) -> None:
    objects = [ecg_object(500 + n, pki.rsa_doctor, patient_id="SESSION-1") for n in range(6)]
    with via(relay).session() as session:
        stored = [session.store(data) for data in objects]
        studies = session.find_studies(StudyQuery(patient_id="SESSION-1"))
        instances = [
            i.sop_instance_uid
            for s in studies
            for i in session.find_instances(s.study_instance_uid)
        ]
        back = [session.get(s.sop_instance_uid) for s in stored]
        assert session.associations_opened == 1
    assert relay.connections == 1  # counted on the wire, not by the client
    assert sorted(instances) == sorted(s.sop_instance_uid for s in stored)
    for item, data in zip(stored, back, strict=True):
        assert _data_set(data) == _data_set(_orthanc_file(orthanc, item.sop_instance_uid))
        verdicts = verify_dataset(data, pki.roots, pki.intermediates)
        assert [v.valid for v in verdicts] == [True]


def test_single_calls_still_work_each_on_an_association_of_its_own(
    orthanc: OrthancServer, relay: TcpRelay
) -> None:
    pacs = via(relay)
    first = pacs.store(ecg_object(510))
    second = pacs.store(ecg_object(511))
    assert relay.connections == 2
    back = pacs.get(second.sop_instance_uid)
    assert _data_set(back) == _data_set(_orthanc_file(orthanc, second.sop_instance_uid))
    assert relay.connections == 3  # locating and fetching share one association
    assert pacs.locate(first.sop_instance_uid).study_instance_uid == first.study_instance_uid


def test_replies_are_never_taken_by_the_wrong_operation(
    orthanc: OrthancServer, relay: TcpRelay
) -> None:
    """Back-to-back C-FIND and C-GET on one association, many times: each answer reaches the
    operation that asked (pynetdicom's own service loop used to take one now and then)."""
    with via(relay).session() as session:
        stored = [session.store(ecg_object(520 + n)) for n in range(5)]
        for round_ in range(16):
            for item in stored:
                data = session.get(item.sop_instance_uid)
                assert pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID == (
                    item.sop_instance_uid
                ), f"round {round_}"
        assert session.associations_opened == 1
    assert relay.connections == 1


def test_no_delayed_acknowledgement_stall_per_message(orthanc: OrthancServer) -> None:
    """With Nagle's algorithm on either side, every C-FIND waits for a delayed ACK (40 ms or
    more on Linux); without it a C-FIND on an open association over loopback takes a few ms."""
    pacs = OrthancDimse("127.0.0.1", orthanc.dicom_port, called_aet=ORTHANC_AET)
    stored = pacs.store(ecg_object(530))
    with pacs.session() as session:
        session.locate(stored.sop_instance_uid)  # the association is open from here on
        durations = []
        for _ in range(15):
            start = time.perf_counter()
            session.locate(stored.sop_instance_uid)
            durations.append(time.perf_counter() - start)
    assert statistics.median(durations) < 0.030, durations


def test_a_dropped_association_is_replaced_and_nothing_is_lost(
    orthanc: OrthancServer, relay: TcpRelay
) -> None:
    with via(relay).session() as session:
        first = session.store(ecg_object(540))
        relay.drop_all()  # as if Orthanc restarted or closed the idle association
        time.sleep(0.2)
        second = session.store(ecg_object(541))
        back = session.get(first.sop_instance_uid)
        assert _data_set(back) == _data_set(_orthanc_file(orthanc, first.sop_instance_uid))
        assert session.associations_opened == 2
    assert relay.connections == 2
    _orthanc_file(orthanc, second.sop_instance_uid)


def test_another_sop_class_goes_over_an_association_of_its_own(
    orthanc: OrthancServer, relay: TcpRelay
) -> None:
    dataset = pydicom.dcmread(io.BytesIO(ecg_object(550)))
    dataset.SOPClassUID = SECONDARY_CAPTURE
    dataset.file_meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE
    other = dataset_to_bytes(dataset)
    with via(relay).session() as session:
        ecg = session.store(ecg_object(551))
        secondary = session.store(other)
        assert session.associations_opened == 1  # the extra association is not the session's
    assert relay.connections == 2
    assert secondary.sop_class_uid == SECONDARY_CAPTURE
    assert _orthanc_file(orthanc, secondary.sop_instance_uid)[128:132] == b"DICM"
    _orthanc_file(orthanc, ecg.sop_instance_uid)


def test_refused_ae_title_and_dead_peer_give_clear_errors_for_every_operation(
    orthanc: OrthancServer, relay: TcpRelay
) -> None:
    with via(relay, calling="STRANGER").session() as session:
        for seed in (560, 561):
            with pytest.raises(PacsRefused, match="STRANGER"):
                session.store(ecg_object(seed))
        with pytest.raises(PacsRefused, match="STRANGER"):
            session.find_studies(StudyQuery(patient_id="X"))
    nowhere = OrthancDimse("127.0.0.1", free_port(), timeout=5)
    with nowhere.session() as session:
        for seed in (562, 563):
            with pytest.raises(PacsUnavailable, match="cannot be reached"):
                session.store(ecg_object(seed))
    assert isinstance(nowhere.session(), DimseSession)


def test_between_operations_nothing_else_takes_messages_off_the_association(
    orthanc: OrthancServer,
) -> None:
    """The mechanism behind the test above, made deterministic: a reply that arrives while no
    operation is running stays queued for the next operation instead of being taken (and
    dropped) by pynetdicom's service loop."""
    pacs = OrthancDimse("127.0.0.1", orthanc.dicom_port, called_aet=ORTHANC_AET)
    with pacs.session() as session:
        stored = session.store(ecg_object(570))
        assoc = session._assoc
        assert assoc is not None
        late_reply = C_FIND()
        late_reply.MessageIDBeingRespondedTo = 99
        late_reply.Status = 0x0000
        assoc.dimse.msg_queue.put((1, late_reply))
        time.sleep(0.1)  # pynetdicom's loop polls every millisecond
        assert assoc.dimse.msg_queue.get(block=False) == (1, late_reply)
        assert session.locate(stored.sop_instance_uid).sop_instance_uid == stored.sop_instance_uid
