"""The oci tier (being written)."""
