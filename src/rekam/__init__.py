"""Rekam — secure telemedicine and medical-records platform."""

__version__ = "0.1.0"
