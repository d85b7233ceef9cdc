"""tinyjson_pp: pretty-print JSON with sorted keys."""

import json

__version__ = "0.2.0"


def pretty(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=True)
