"""JSON API for oversight (filled in as the forms land)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1", tags=["oversight"])
