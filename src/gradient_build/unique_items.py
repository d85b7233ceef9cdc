"""JSON Schema's uniqueItems in linear time, for the CycloneDX validator.

jsonschema compares an array of objects pairwise (its `uniq` cannot sort dicts): an SBOM's
components, hashes and dependencies made that ~half of a document's validation (96
components: ~20 of ~45 ms, on the critical path of every build's promotion). Each item is
turned into a hashable value that is equal exactly when jsonschema's `equal` says the items
are (a bool is not a number, 1 equals 1.0, objects by key and value, arrays in order), and
the set of them is counted. The verdict and the message are jsonschema's; anything this
cannot make hashable goes to jsonschema's own `uniq`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any


def canonical(value: Any) -> Any:
    """A hashable stand-in, equal for two values exactly when jsonschema's `equal` is."""
    if isinstance(value, str):
        return ("s", value)
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, Mapping):
        return ("o", frozenset((key, canonical(item)) for key, item in value.items()))
    if isinstance(value, Sequence):
        return ("a", tuple(canonical(item) for item in value))
    if value is None or isinstance(value, int | float):
        return ("n", value)  # 1 == 1.0 and hash alike, as jsonschema has them equal
    raise TypeError(type(value).__name__)


def distinct(items: Sequence[Any]) -> bool:
    """Whether no two items are equal (jsonschema's `uniq`)."""
    try:
        return len({canonical(item) for item in items}) == len(items)
    except TypeError:
        from jsonschema._utils import uniq  # type: ignore[import-untyped]

        return bool(uniq(items))


def unique_items(validator: Any, wanted: Any, instance: Any, schema: Any) -> Iterator[Any]:
    """The uniqueItems keyword, as jsonschema's _keywords.uniqueItems but for the check."""
    from jsonschema.exceptions import ValidationError  # type: ignore[import-untyped]

    if wanted and validator.is_type(instance, "array") and not distinct(instance):
        yield ValidationError(f"{instance!r} has non-unique elements")


def faster(validator: Any) -> Any:
    """A copy of a built jsonschema validator with this uniqueItems (the same schema,
    registry and format checker); the validator itself when it is not one we know."""
    from jsonschema.validators import extend  # type: ignore[import-untyped]

    try:
        cls = extend(type(validator), {"uniqueItems": unique_items})
        return cls(validator.schema, registry=validator._registry,
                   format_checker=validator.format_checker)
    except (AttributeError, TypeError):
        return validator
