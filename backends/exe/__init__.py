"""The exe tier (being written)."""
