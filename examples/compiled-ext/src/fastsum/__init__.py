"""fastsum: sums integers in C."""

from ._speedups import total

__all__ = ["total"]
