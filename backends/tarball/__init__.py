"""The tarball tier (being written)."""
