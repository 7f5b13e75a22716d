"""A local Coasty server for offline tests and demos (being built)."""
