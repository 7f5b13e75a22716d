"""pytest plugin: the ``coasty_sandbox`` fixture (being built)."""
