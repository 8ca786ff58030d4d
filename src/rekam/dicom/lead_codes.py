"""ECG lead codes for the Channel Source Sequence (PS3.16 CID 3001, SCP-ECG coding scheme).

``lead_for_name`` maps the many ways recordings spell a lead (``i``, ``avr``, ``V1``, ``vx``) to
one :class:`LeadCode`; ``lead_for_code`` maps a coded Channel Source back, for both the SCPECG
and the MDC coding schemes.
"""

from __future__ import annotations

from dataclasses import dataclass

SCPECG_SCHEME = "SCPECG"
SCPECG_SCHEME_VERSION = "1.3"
MDC_SCHEME = "MDC"


@dataclass(frozen=True)
class LeadCode:
    """One ECG lead: its short label, SCPECG code value, code meaning and MDC code value."""

    label: str
    code_value: str
    code_meaning: str
    mdc_code_value: str | None = None

    @property
    def coding_scheme(self) -> str:
        return SCPECG_SCHEME


def _lead(label: str, number: int, mdc: int | None = None) -> LeadCode:
    mdc_code = None if mdc is None else f"2:{mdc}"
    return LeadCode(label, f"5.6.3-9-{number}", f"Lead {label}", mdc_code)


#: A channel whose lead is not known (SCP-ECG lead 0).
UNSPECIFIED_LEAD = LeadCode("", "5.6.3-9-0", "Unspecified lead", "2:0")

_LEADS: tuple[LeadCode, ...] = (
    LeadCode("I", "5.6.3-9-1", "Lead I (Einthoven)", "2:1"),
    _lead("II", 2, 2),
    _lead("III", 61, 61),
    _lead("aVR", 62, 62),
    _lead("aVL", 63, 63),
    _lead("aVF", 64, 64),
    _lead("V1", 3, 3),
    _lead("V2", 4, 4),
    _lead("V3", 5, 5),
    _lead("V4", 6, 6),
    _lead("V5", 7, 7),
    _lead("V6", 8, 8),
    _lead("V7", 9, 9),
    _lead("V2R", 10, 10),
    _lead("V3R", 11, 11),
    _lead("V4R", 12, 12),
    _lead("V5R", 13, 13),
    _lead("V6R", 14, 14),
    _lead("V7R", 15, 15),
    _lead("X", 16, 16),
    _lead("Y", 17, 17),
    _lead("Z", 18, 18),
    _lead("V8", 66, 66),
    _lead("V9", 67, 67),
)

#: The twelve leads of a standard resting ECG, in the conventional order.
STANDARD_12_LEADS: tuple[str, ...] = (
    "I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6",
)  # fmt: skip

_BY_LABEL = {lead.label.lower(): lead for lead in _LEADS}
_ALIASES = {
    # Frank orthogonal leads (PTB records call them vx, vy, vz).
    "vx": "x",
    "vy": "y",
    "vz": "z",
}
_BY_CODE = {lead.code_value: lead for lead in _LEADS}
_BY_MDC = {lead.mdc_code_value: lead for lead in _LEADS if lead.mdc_code_value}


def lead_for_name(name: str) -> LeadCode | None:
    """The lead a recording's lead name refers to, or None when the name is not a known lead."""
    key = " ".join(name.strip().split()).lower()
    key = key.removeprefix("lead ")
    key = _ALIASES.get(key, key)
    return _BY_LABEL.get(key)


def lead_for_code(code_value: str, scheme: str) -> LeadCode | None:
    """The lead of a coded Channel Source (SCPECG or MDC scheme), or None when unknown."""
    value = code_value.strip()
    if scheme.strip().upper() == SCPECG_SCHEME:
        return _BY_CODE.get(value)
    if scheme.strip().upper() == MDC_SCHEME:
        return _BY_MDC.get(value)
    return None


def is_standard_12_lead(labels: tuple[str, ...]) -> bool:
    """True when ``labels`` are exactly the twelve standard leads (in any order)."""
    return len(labels) == len(STANDARD_12_LEADS) and set(labels) == set(STANDARD_12_LEADS)
