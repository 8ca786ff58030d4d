"""Rekam's web layer: the HTTPS server's pages and JSON API."""
