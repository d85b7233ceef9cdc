"""Every way a gradient.toml can be wrong: exit 2, file:line, key, nearest name, no writes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from gradient_build.config import locate

ROOT = Path(__file__).resolve().parent.parent

BAD_CONFIGS = [
    # (gradient.toml, expected line, key fragment, suggestion or None)
    ('tierz = "wheel"\n', 1, "tierz", "tier"),
    ('tier = "wheell"\n', 1, "tier", "wheel"),
    ('tier = ["wheel", "sdistt"]\n', 1, "tier", "sdist"),
    ('tier = "wheel"\n\n[verify]\ntimeout = "soon"\n', 4, "verify.timeout", None),
    ('tier = "wheel"\n\n[tiers.wheel]\nfrontnd = "uv"\n', 4, "tiers.wheel.frontnd", "frontend"),
    ('tier = "wheel"\n\n[tiers.wheel]\nfrontend = "uvv"\n', 4, "tiers.wheel.frontend", "uv"),
    ('tier = "wheel"\n\n[tiers.wheell]\n', 3, "tiers.wheell", "wheel"),
    ('tier = "wheel"\n[app]\nscript = "helo"\n', 3, "app.script", "hello"),
    ('tier = "wheel"\n[app]\nscript = "hello"\nentry = "a:b"\n', 4, "app.entry", None),
    ('tier = "wheel"\n[verify]\nargs = "--help"\n', 3, "verify.args", None),
    ('tier = "wheel"\n[verify\n', 2, "", None),
    ('tier = "wheel"\nverify = 3\n', 2, "verify", None),
    ('tier = "wheel"\n[app]\nscript = hello\n', 3, "column 10", None),  # the parser's position
]


@pytest.mark.parametrize(("text", "line", "key", "suggestion"), BAD_CONFIGS)
def test_bad_config_is_a_clear_error_that_writes_nothing(
    example: Callable[..., Path], gradient: Callable[..., object],
    text: str, line: int, key: str, suggestion: str | None,
) -> None:
    project = example("hello-app", toml=text)
    result = gradient(project, "build")
    assert result.returncode == 2, result.stderr  # type: ignore[attr-defined]
    err = result.stderr  # type: ignore[attr-defined]
    assert f"gradient.toml:{line}:" in err
    assert key in err
    if suggestion:
        assert f"did you mean {suggestion!r}" in err
    assert "Traceback" not in err
    assert not (project / "dist").exists()


def test_unknown_tier_on_the_command_line(example: Callable[..., Path],
                                          gradient: Callable[..., object]) -> None:
    project = example("hello-app")
    result = gradient(project, "build", "--tier", "wheell")
    assert result.returncode == 2  # type: ignore[attr-defined]
    assert "did you mean 'wheel'" in result.stderr  # type: ignore[attr-defined]
    assert not (project / "dist").exists()


def test_missing_config_says_how_to_start(tmp_path: Path, gradient: Callable[..., object]) -> None:
    result = gradient(tmp_path, "build")
    assert result.returncode == 2  # type: ignore[attr-defined]
    assert "gradient init" in result.stderr  # type: ignore[attr-defined]


def test_init_writes_a_config_that_builds(example: Callable[..., Path],
                                          gradient: Callable[..., object]) -> None:
    project = example("pure-package")
    (project / "gradient.toml").unlink()
    made = gradient(project, "init")
    assert made.returncode == 0, made.stderr  # type: ignore[attr-defined]
    text = (project / "gradient.toml").read_text()
    assert 'tier = "wheel"' in text and "import tinyjson_pp" in text
    again = gradient(project, "init")
    assert again.returncode == 2  # type: ignore[attr-defined]


def test_locate_finds_keys_in_tables_and_headers() -> None:
    text = 'tier = "x"\n\n[tiers.pex]\n# c\nshebang = "env"\n\n[ tiers . "oci" ]\nuser = "a"\n'
    assert locate(text, ("tier",)) == 1
    assert locate(text, ("tiers", "pex")) == 3
    assert locate(text, ("tiers", "pex", "shebang")) == 5
    assert locate(text, ("tiers", "oci", "user")) == 8
    assert locate(text, ("tiers", "oci", "missing")) == 7
    assert locate(text, ("nothing",)) is None


def test_shipped_json_schema_matches_the_models(gradient: Callable[..., object]) -> None:
    result = gradient(ROOT, "schema")
    assert result.returncode == 0, result.stderr  # type: ignore[attr-defined]
    generated = json.loads(result.stdout)  # type: ignore[attr-defined]
    shipped = json.loads((ROOT / "gradient.schema.json").read_text())
    assert generated == shipped, "run `gradient schema > gradient.schema.json`"
    assert set(generated["properties"]["tiers"]["properties"]) >= {"copy", "sdist", "wheel"}


def test_type_errors_read_as_english(example: Callable[..., Path],
                                     gradient: Callable[..., object]) -> None:
    project = example("hello-app", toml='tier = "wheel"\n[verify]\nargs = "--help"\n')
    result = gradient(project, "build")
    assert result.returncode == 2  # type: ignore[attr-defined]
    assert "must be a list of strings" in result.stderr  # type: ignore[attr-defined]
