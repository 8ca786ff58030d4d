"""The navigation bar: each entry shown only to roles whose permissions reach it."""

from __future__ import annotations

from dataclasses import dataclass

from rekam.his.rbac import Actor, Permission


@dataclass(frozen=True)
class NavItem:
    label_key: str
    path: str
    permission: Permission


NAVIGATION: tuple[NavItem, ...] = (
    NavItem("nav.dashboard", "/", Permission.DASHBOARD_VIEW),
    NavItem("nav.patients", "/patients", Permission.PATIENTS_READ),
    NavItem("nav.consultations", "/consultations", Permission.CONSULTATIONS_READ),
    NavItem("nav.lab", "/lab", Permission.LAB_READ),
    NavItem("nav.monitor", "/monitor", Permission.MONITOR_VIEW),
    NavItem("nav.ecg_studies", "/ecg-studies", Permission.ECG_STUDIES_READ),
    NavItem("nav.pharmacy", "/pharmacy", Permission.PRESCRIPTIONS_DISPENSE),
    NavItem("nav.practitioners", "/practitioners", Permission.PRACTITIONERS_READ),
    NavItem("nav.my_record", "/my-record", Permission.OWN_RECORD_READ),
    NavItem("nav.audit", "/audit", Permission.AUDIT_READ),
    NavItem("nav.users", "/admin/users", Permission.USERS_READ),
    NavItem("nav.account", "/account", Permission.OWN_ACCOUNT_MANAGE),
)


def navigation_for(actor: Actor) -> list[NavItem]:
    return [item for item in NAVIGATION if actor.can(item.permission)]
