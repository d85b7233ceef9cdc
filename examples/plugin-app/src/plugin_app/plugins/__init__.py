"""Plugins: each module here defines `transform(text) -> str`; the CLI imports one by name."""
