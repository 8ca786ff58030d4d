"""Helpers shared by Rekam's tests."""
