"""Indonesian identifiers: NIK (Nomor Induk Kependudukan) and BPJS Kesehatan numbers."""

from __future__ import annotations

import re
from datetime import date

from rekam.his.errors import ValidationFailed

# Province codes (kode wilayah) in use, including the newer Papua provinces.
PROVINCE_CODES = frozenset(
    {
        11,
        12,
        13,
        14,
        15,
        16,
        17,
        18,
        19,
        21,
        31,
        32,
        33,
        34,
        35,
        36,
        51,
        52,
        53,
        61,
        62,
        63,
        64,
        65,
        71,
        72,
        73,
        74,
        75,
        76,
        81,
        82,
        91,
        92,
        93,
        94,
        95,
        96,
        97,
    }
)
_DIGITS = re.compile(r"\d+")


def clean_digits(value: str) -> str:
    return re.sub(r"[\s.\-]", "", value)


def validate_nik(nik: str, birth_date: date | None = None, sex: str | None = None) -> str:
    """Return the NIK as 16 digits, or raise ValidationFailed saying what is wrong.

    The 7th–12th digits encode the birth date as DDMMYY, with 40 added to the day for women."""
    digits = clean_digits(nik)
    if len(digits) != 16 or not _DIGITS.fullmatch(digits):
        raise ValidationFailed("the NIK must have exactly 16 digits", field="nik", key="nik.length")
    if int(digits[:2]) not in PROVINCE_CODES:
        raise ValidationFailed(
            "the NIK starts with an unknown province code", field="nik", key="nik.province"
        )
    day, month, year2 = int(digits[6:8]), int(digits[8:10]), int(digits[10:12])
    female = day > 40
    real_day = day - 40 if female else day
    if not (1 <= real_day <= 31 and 1 <= month <= 12):
        raise ValidationFailed(
            "the NIK's date digits (7–12) are not a valid birth date", field="nik", key="nik.date"
        )
    if digits[12:] == "0000":
        raise ValidationFailed(
            "the NIK's serial number cannot be 0000", field="nik", key="nik.serial"
        )
    if birth_date is not None and (
        real_day != birth_date.day or month != birth_date.month or year2 != birth_date.year % 100
    ):
        raise ValidationFailed(
            "the NIK does not match the date of birth", field="nik", key="nik.birth_date_mismatch"
        )
    if sex in ("M", "F") and female != (sex == "F"):
        raise ValidationFailed(
            "the NIK does not match the sex", field="nik", key="nik.sex_mismatch"
        )
    return digits


def validate_bpjs(number: str) -> str:
    digits = clean_digits(number)
    if len(digits) != 13 or not _DIGITS.fullmatch(digits):
        raise ValidationFailed(
            "the BPJS Kesehatan number must have exactly 13 digits", field="bpjs", key="bpjs.length"
        )
    return digits
