"""Fictitious demonstration data, so a newcomer sees a populated clinic.

Staff accounts land here now; patients, visits, labs and prescriptions join with the clinic forms.
Every name is invented.
"""

from __future__ import annotations

from dataclasses import dataclass

from rekam.his.accounts import AccountService
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
