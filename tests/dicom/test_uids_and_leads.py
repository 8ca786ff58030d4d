"""UIDs under the organisation root and ECG lead codes."""

from __future__ import annotations

import pytest

from rekam.dicom import InvalidUidRoot, generate_uid, lead_for_code, lead_for_name
from rekam.dicom.lead_codes import STANDARD_12_LEADS, UNSPECIFIED_LEAD, is_standard_12_lead
from rekam.dicom.uids import is_valid_uid


@pytest.mark.parametrize(
    "root", ["2.25", "1.2.826.0.1.3680043.10.1045", "1.2.3.4.5.6.7.8.9.10.11.12.13"]
)
def test_generated_uids_are_valid_unique_and_under_the_root(root: str) -> None:
    uids = {generate_uid(root) for _ in range(500)}
    assert len(uids) == 500
    for uid in uids:
        assert uid.startswith(root + ".")
        assert len(uid) <= 64
        assert is_valid_uid(uid)


@pytest.mark.parametrize("root", ["", "1.2.x", "01.2", "1..2", "1.2.3.04", "1." + "2" * 50, "-1.2"])
def test_bad_uid_roots_are_refused(root: str) -> None:
    with pytest.raises(InvalidUidRoot):
        generate_uid(root)


@pytest.mark.parametrize(
    ("name", "label", "code"),
    [
        ("i", "I", "5.6.3-9-1"),
        ("II", "II", "5.6.3-9-2"),
        ("iii", "III", "5.6.3-9-61"),
        ("avr", "aVR", "5.6.3-9-62"),
        ("aVL", "aVL", "5.6.3-9-63"),
        ("AVF", "aVF", "5.6.3-9-64"),
        ("v1", "V1", "5.6.3-9-3"),
        ("V6", "V6", "5.6.3-9-8"),
        ("Lead V4", "V4", "5.6.3-9-6"),
        ("vx", "X", "5.6.3-9-16"),
        ("vz", "Z", "5.6.3-9-18"),
    ],
)
def test_lead_names_map_to_scpecg_codes(name: str, label: str, code: str) -> None:
    lead = lead_for_name(name)
    assert lead is not None
    assert (lead.label, lead.code_value) == (label, code)
    assert lead_for_code(code, "SCPECG") == lead
    assert lead.mdc_code_value is not None
    assert lead_for_code(lead.mdc_code_value, "MDC") == lead


def test_unknown_leads_are_not_guessed() -> None:
    assert lead_for_name("MLII") is None
    assert lead_for_name("-aVR") is None
    assert lead_for_code("5.6.3-9-1", "LN") is None
    assert UNSPECIFIED_LEAD.code_value == "5.6.3-9-0"


def test_standard_12_lead_set() -> None:
    assert is_standard_12_lead(STANDARD_12_LEADS)
    assert is_standard_12_lead(tuple(reversed(STANDARD_12_LEADS)))
    assert not is_standard_12_lead(STANDARD_12_LEADS[:11])
    assert not is_standard_12_lead((*STANDARD_12_LEADS[:11], "X"))
