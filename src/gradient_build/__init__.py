"""gradient-build: one Python project along the whole packaging gradient, each artifact verified."""

__version__ = "0.1.0"
