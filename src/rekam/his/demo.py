"""Fictitious demonstration data, so a newcomer sees a populated clinic.

Staff accounts land here now; patients, visits, labs and prescriptions join with the clinic forms.
Every name is invented.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date

from rekam.his.accounts import AccountService
from rekam.his.errors import Conflict
from rekam.his.patients import PatientInput, PatientService
from rekam.his.rbac import Actor, Role

DEMO_STAFF: tuple[tuple[str, str, Role], ...] = (
    ("dr.sari", "dr. Sari Wulandari", Role.DOCTOR),
    ("dr.bambang", "dr. Bambang Hartono, Sp.JP", Role.DOCTOR),
    ("ns.dewi", "Ns. Dewi Lestari", Role.NURSE),
    ("apt.rina", "apt. Rina Kusumawati", Role.PHARMACIST),
    ("lab.agus", "Agus Setiawan, A.Md.AK", Role.LAB),
    ("daftar.putri", "Putri Anggraini", Role.REGISTRATION),
)


@dataclass(frozen=True)
class DemoAccount:
    username: str
    role: Role
    one_time_password: str


def load_demo_staff(accounts: AccountService) -> list[DemoAccount]:
    """Create the demo staff accounts that do not exist yet."""
    existing = {u.username for u in accounts.list_users(Actor.system())}
    created: list[DemoAccount] = []
    for username, name, role in DEMO_STAFF:
        if username in existing:
            continue
        result = accounts.create_user(Actor.system(), username, name, role)
        assert result.one_time_password is not None
        created.append(DemoAccount(username, role, result.one_time_password))
    return created


def has_demo_data(accounts: AccountService) -> bool:
    existing = {u.username for u in accounts.list_users(Actor.system())}
    return any(username in existing for username, _, _ in DEMO_STAFF)


_GIVEN_F = (
    "Siti",
    "Dewi",
    "Sri",
    "Ayu",
    "Putri",
    "Nur",
    "Rina",
    "Wulan",
    "Fitri",
    "Maria",
    "Yohana",
    "Ni Made",
    "Ni Luh",
    "Intan",
    "Ratna",
    "Lestari",
)
_GIVEN_M = (
    "Budi",
    "Agus",
    "Andi",
    "Bambang",
    "Made",
    "Wayan",
    "Hendra",
    "Joko",
    "Rizky",
    "Yusuf",
    "Fajar",
    "Dimas",
    "Teguh",
    "Ketut",
    "Markus",
    "Ahmad",
)
_FAMILY = (
    "Santoso",
    "Wijaya",
    "Saputra",
    "Hidayat",
    "Nasution",
    "Siregar",
    "Simanjuntak",
    "Pratama",
    "Kusuma",
    "Halim",
    "Sitompul",
    "Wenda",
    "Manuputty",
    "Rahman",
    "Lubis",
    "Tanjung",
    "Suryadi",
    "Gunawan",
)
_PLACES = (
    ("Jl. Kenanga No. {n}, Kel. Sukajadi, Kota Bandung", 32),
    ("Jl. Diponegoro No. {n}, Kota Surabaya", 35),
    ("Jl. Sisingamangaraja No. {n}, Kota Medan", 12),
    ("Jl. Gajah Mada No. {n}, Denpasar", 51),
    ("Jl. Sam Ratulangi No. {n}, Kota Makassar", 73),
    ("Jl. Ahmad Yani No. {n}, Kota Jayapura", 91),
    ("Jl. Malioboro No. {n}, Yogyakarta", 34),
)
_ALLERGIES = (None, None, None, "penisilin", "sulfa", "udang", "aspirin")
_HISTORY = (
    None,
    "hipertensi sejak 2018",
    "diabetes melitus tipe 2",
    "asma",
    "riwayat TB paru, tuntas berobat 2021",
    None,
    "gastritis",
)


def demo_patient(rng: random.Random) -> PatientInput:
    """One fictitious patient with a NIK of the right shape for their birth date and sex."""
    sex = rng.choice("MF")
    given = rng.choice(_GIVEN_F if sex == "F" else _GIVEN_M)
    born = date(rng.randint(1945, 2022), rng.randint(1, 12), rng.randint(1, 28))
    address, province = rng.choice(_PLACES)
    day = born.day + (40 if sex == "F" else 0)
    nik = (
        f"{province:02d}{rng.randint(1, 79):02d}{rng.randint(1, 49):02d}"
        f"{day:02d}{born.month:02d}{born.year % 100:02d}{rng.randint(1, 9999):04d}"
    )
    return PatientInput(
        name=f"{given} {rng.choice(_FAMILY)}",
        birth_date=born,
        sex="F" if sex == "F" else "M",
        nik=nik,
        bpjs="000" + "".join(str(rng.randint(0, 9)) for _ in range(10))
        if rng.random() < 0.8
        else None,
        address=address.format(n=rng.randint(1, 200)),
        phone=f"08{rng.randint(11, 59)}-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}",
        emergency_contact=f"{rng.choice(_GIVEN_F + _GIVEN_M)} (keluarga)",
        allergies=rng.choice(_ALLERGIES),
        medical_history=rng.choice(_HISTORY),
    )


def load_demo_patients(patients: PatientService, count: int = 40, seed: int = 2026) -> list[str]:
    """Register ``count`` fictitious patients; returns the ids of those added."""
    rng = random.Random(seed)  # noqa: S311 - fictitious demo data, not security
    clerk = Actor(user_id=None, username="demo", role=Role.REGISTRATION, source_address="local")
    added: list[str] = []
    for _ in range(count):
        try:
            added.append(patients.register(clerk, demo_patient(rng)).id)
        except Conflict:
            continue  # the same NIK drawn twice: skip it
    return added
