"""DICOM for Rekam (placeholder while the package is assembled)."""
