"""`gradient advise` walks the gradient for the project and the target's facts."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

Gradient = Callable[..., subprocess.CompletedProcess[str]]


def advice(gradient: Gradient, project: Path, *flags: str) -> dict[str, object]:
    result = gradient(project, "advise", "--json", *flags)
    assert result.returncode in (0, 1), result.stderr
    data: dict[str, object] = json.loads(result.stdout)
    return data


def test_advice_follows_the_target(example: Callable[..., Path], gradient: Gradient) -> None:
    app = example("hello-app")
    assert advice(gradient, app)["recommended"] == "wheel"
    assert advice(gradient, app, "--downloads")["recommended"] == "sdist"
    assert advice(gradient, app, "--no-python")["recommended"] == "exe"
    module = example("single-module")
    assert advice(gradient, module)["recommended"] == "copy"
    steps = advice(gradient, app)["steps"]
    assert {"tier": "copy", "fits": False,
            "reason": "the project is not a single module ([app] module names one)"} in steps
