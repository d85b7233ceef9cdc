"""The pex tier (being written)."""
