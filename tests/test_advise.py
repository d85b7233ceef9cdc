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


def test_target_facts_are_an_open_set(example: Callable[..., Path], gradient: Gradient) -> None:
    """[target] takes every fact the core knows (and tiers declare), names the nearest for a
    typo, and --fact sets any of them for advise."""
    app = example("hello-app", toml='tier = "wheel"\n[target]\nconda = true\n'
                                    'distros = ["debian:bookworm"]\n')
    assert gradient(app, "plan").returncode == 0
    typo = example("hello-app", toml='tier = "wheel"\n[target]\ncontaner = true\n')
    result = gradient(typo, "plan")
    assert result.returncode == 2
    assert "gradient.toml:3:" in result.stderr and "did you mean 'container'" in result.stderr
    wrong = example("hello-app", toml='tier = "wheel"\n[target]\npython = "yes"\n')
    assert "must be true or false" in gradient(wrong, "plan").stderr
    no_python = advice(gradient, app, "--fact", "python=no")
    assert no_python["recommended"] == "exe"
    bad = gradient(app, "advise", "--fact", "pyhton=no")
    assert bad.returncode == 2 and "did you mean 'python'" in bad.stderr
