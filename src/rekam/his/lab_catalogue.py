"""A small built-in catalogue of the laboratory tests a Puskesmas or clinic commonly orders.

Each test has a LOINC code (used as Rekam's stable test code), its names in English and Bahasa
Indonesia, the usual unit and adult reference ranges per sex. Qualitative tests list the values
that count as normal. Ranges are typical textbook values; a laboratory enters its own range with a
result whenever its analyser's range differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["numeric", "qualitative"]


@dataclass(frozen=True)
class Range:
    """A numeric reference range; either bound may be open."""

    low: float | None
    high: float | None

    @property
    def text(self) -> str:
        if self.low is not None and self.high is not None:
            return f"{self.low:g}–{self.high:g}"
        if self.low is not None:
            return f"≥ {self.low:g}"
        if self.high is not None:
            return f"≤ {self.high:g}"
        return ""


@dataclass(frozen=True)
class CatalogueTest:
    code: str
    name_en: str
    name_id: str
    unit: str
    kind: Kind = "numeric"
    #: adult ranges by sex ("M", "F")
    adult_ranges: dict[str, Range] = field(default_factory=dict)
    #: range for patients under 18, where one applies to all children
    child_range: Range | None = None
    #: qualitative values that are normal (lower case)
    normal_values: tuple[str, ...] = ()
    #: qualitative values offered on the result form
    choices: tuple[str, ...] = ()

    def name(self, language: str) -> str:
        return self.name_id if language == "id" else self.name_en

    def reference_for(self, sex: str | None, adult: bool) -> Range | None:
        if self.kind != "numeric":
            return None
        if not adult:
            return self.child_range
        if sex in self.adult_ranges:
            return self.adult_ranges[sex]
        return None


def _both(low: float | None, high: float | None) -> dict[str, Range]:
    return {"M": Range(low, high), "F": Range(low, high)}


CATALOGUE: tuple[CatalogueTest, ...] = (
    CatalogueTest(
        "718-7",
        "Haemoglobin",
        "Hemoglobin",
        "g/dL",
        adult_ranges={"M": Range(13.0, 17.0), "F": Range(12.0, 15.0)},
        child_range=Range(11.0, 14.5),
    ),
    CatalogueTest(
        "6690-2",
        "Leukocytes",
        "Leukosit",
        "10³/µL",
        adult_ranges=_both(4.0, 10.0),
        child_range=Range(5.0, 13.0),
    ),
    CatalogueTest(
        "777-3",
        "Platelets",
        "Trombosit",
        "10³/µL",
        adult_ranges=_both(150, 400),
        child_range=Range(150, 450),
    ),
    CatalogueTest(
        "1558-6", "Fasting blood glucose", "Gula darah puasa", "mg/dL", adult_ranges=_both(70, 99)
    ),
    CatalogueTest(
        "2345-7", "Random blood glucose", "Gula darah sewaktu", "mg/dL", adult_ranges=_both(70, 199)
    ),
    CatalogueTest("4548-4", "HbA1c", "HbA1c", "%", adult_ranges=_both(None, 5.6)),
    CatalogueTest(
        "2093-3", "Total cholesterol", "Kolesterol total", "mg/dL", adult_ranges=_both(None, 199)
    ),
    CatalogueTest(
        "2160-0",
        "Creatinine",
        "Kreatinin",
        "mg/dL",
        adult_ranges={"M": Range(0.7, 1.3), "F": Range(0.6, 1.1)},
    ),
    CatalogueTest(
        "1920-8",
        "SGOT (AST)",
        "SGOT (AST)",
        "U/L",
        adult_ranges={"M": Range(None, 40), "F": Range(None, 32)},
    ),
    CatalogueTest(
        "1742-6",
        "SGPT (ALT)",
        "SGPT (ALT)",
        "U/L",
        adult_ranges={"M": Range(None, 41), "F": Range(None, 33)},
    ),
    CatalogueTest(
        "3084-1",
        "Uric acid",
        "Asam urat",
        "mg/dL",
        adult_ranges={"M": Range(3.4, 7.0), "F": Range(2.4, 5.7)},
    ),
    CatalogueTest(
        "2888-6",
        "Urine protein (dipstick)",
        "Protein urin (dipstik)",
        "",
        kind="qualitative",
        normal_values=("negatif", "negative", "-"),
        choices=("negatif", "trace", "+1", "+2", "+3", "+4"),
    ),
    CatalogueTest(
        "70569-9",
        "Malaria rapid test",
        "Tes cepat malaria (RDT)",
        "",
        kind="qualitative",
        normal_values=("negatif", "negative"),
        choices=("negatif", "positif P. falciparum", "positif P. vivax", "positif mix"),
    ),
    CatalogueTest(
        "11545-1",
        "TB sputum smear (AFB)",
        "BTA sputum (TB)",
        "",
        kind="qualitative",
        normal_values=("negatif", "negative"),
        choices=("negatif", "scanty", "+1", "+2", "+3"),
    ),
)

_BY_CODE = {test.code: test for test in CATALOGUE}


def catalogue_test(code: str) -> CatalogueTest | None:
    """The catalogue entry with this code, or None."""
    return _BY_CODE.get(code)
