"""hello-app: greets, with a template read from package data."""

__version__ = "0.1.0"
