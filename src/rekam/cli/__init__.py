"""The ``rekam`` command."""
