"""Fictitious Indonesian patients with valid-format identifiers, for tests."""

from __future__ import annotations

import random
from datetime import date

from rekam.his.patients import PatientInput

_rng = random.Random()


def make_nik(birth_date: date, sex: str, province: int = 31) -> str:
    day = birth_date.day + (40 if sex == "F" else 0)
    region = f"{province:02d}{_rng.randint(1, 79):02d}{_rng.randint(1, 49):02d}"
    born = f"{day:02d}{birth_date.month:02d}{birth_date.year % 100:02d}"
    return f"{region}{born}{_rng.randint(1, 9999):04d}"


def make_bpjs() -> str:
    return "000" + "".join(str(_rng.randint(0, 9)) for _ in range(10))


def make_patient(name: str = "Siti Aminah", sex: str = "F", **extra: str) -> PatientInput:
    birth = date(_rng.randint(1940, 2020), _rng.randint(1, 12), _rng.randint(1, 28))
    values: dict[str, object] = {
        "name": name,
        "birth_date": birth,
        "sex": sex,
        "nik": make_nik(birth, sex),
        "bpjs": make_bpjs(),
        "address": "Jl. Melati No. 12, Kel. Sukamaju, Kota Bandung",
        "phone": "0812-3456-7890",
        "allergies": "amoksisilin",
        "medical_history": "hipertensi sejak 2019",
    }
    values.update(extra)
    return PatientInput(**values)  # type: ignore[arg-type]


def patient_json(canary: str, name: str = "Sri Rahayu") -> dict[str, str]:
    born = date(1979, 4, 21)
    return {
        "name": name,
        "birth_date": born.isoformat(),
        "sex": "F",
        "nik": make_nik(born, "F"),
        "bpjs": make_bpjs(),
        "address": f"Jl. Kenanga {canary} No. 5",
        "phone": "0813-1111-2222",
        "emergency_contact": f"suami {canary}",
        "allergies": f"penisilin {canary}",
        "medical_history": f"diabetes melitus tipe 2 {canary}",
    }
