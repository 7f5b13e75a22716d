"""Shared test configuration.

The ``coasty_sandbox`` fixture (a local Coasty server, reset for each test) comes from the
package's pytest plugin, registered through the ``pytest11`` entry point.
"""
