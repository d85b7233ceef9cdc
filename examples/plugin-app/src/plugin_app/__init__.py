"""plugin-app: applies a plugin chosen by name on the command line."""

__version__ = "0.1.0"
