"""`gradient advise` walks the gradient for the project's facts (found) and the target's (given).

The walk itself is tested in-process over real example projects (their metadata read through
their real build backends), one row per rung and per contradiction; the command is tested as
a user runs it: its --json shape, exit codes, facts with their sources, and --build.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import EXAMPLES, IGNORED

from gradient_build.advise import Contradictory, advise
from gradient_build.advise_open import Subject, open_subject
from gradient_build.backend import Backend, NoOptions
from gradient_build.facts import CONTRADICTIONS
from gradient_build.registry import backends

Gradient = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def subjects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Subject]:
    """Each example, as advise sees it before there is a gradient.toml."""
    cache = tmp_path_factory.mktemp("advise-cache")
    found = {}
    for name in ("single-module", "hello-app", "compiled-ext", "pure-package", "micro-morse"):
        dest = tmp_path_factory.mktemp("advise") / name
        shutil.copytree(EXAMPLES / name, dest, ignore=IGNORED)
        (dest / "gradient.toml").unlink()
        found[name] = open_subject(dest / "gradient.toml", cache)
    return found


RUNGS = [  # (example, target answers, recommended tier): every rung of the gradient
    ("single-module", {}, "copy"),
    ("hello-app", {"downloads": True}, "sdist"),
    ("compiled-ext", {"downloads": True}, "wheel"),
    ("pure-package", {}, "wheel"),
    ("hello-app", {}, "pex"),
    ("hello-app", {"virtualenv": False}, "tarball"),
    ("hello-app", {"python": False}, "exe"),
    ("pure-package", {"python": False, "conda": True}, "conda"),
    ("hello-app", {"conda": True}, "conda"),  # the target's own installer comes first
    ("hello-app", {"own_userspace": True}, "oci"),
    ("hello-app", {"own_kernel": True}, "vm"),
    ("micro-morse", {"microcontroller": True}, "mpy"),
    ("single-module", {"microcontroller": True}, "mpy"),
    ("compiled-ext", {}, "wheel"),
    ("micro-morse", {}, "wheel"),
]


@pytest.mark.parametrize(("example", "answers", "tier"), RUNGS,
                         ids=[f"{e}-{t}-{'-'.join(a) or 'defaults'}" for e, a, t in RUNGS])
def test_each_rung(subjects: dict[str, Subject], example: str, answers: dict[str, bool],
                   tier: str) -> None:
    subject = subjects[example]
    advice = advise(subject, subject.config.target.answered(answers, "flag"))
    assert advice.recommended == tier
    assert advice.chain.endswith(f"-> {tier}")
    order = [s.tier for s in advice.steps]
    assert order == list(backends())  # every tier, in gradient order
    before = order[: order.index(tier)]
    assert all(s.reason for s in advice.steps)
    lighter = [s.tier for s in advice.steps if s.tier in before and s.fits]
    assert lighter == ([] if not answers.get("conda") else [
        a.tier for a in advice.alternatives if a.tier in before])  # only before a preference


class DebLike(Backend[NoOptions]):
    """A tier written elsewhere: it slots into the walk by what it declares, nothing more."""

    name = "deb"
    rank = 70
    target = "Debian with dpkg and a Python"
    needs = frozenset({"python", "os_packages"})


def test_a_new_tier_slots_in_by_its_needs(subjects: dict[str, Subject]) -> None:
    subject = subjects["hello-app"]
    tiers = sorted({**subject.backends, "deb": DebLike()}.items(), key=lambda i: i[1].rank)
    with_deb = dataclasses.replace(subject, backends=dict(tiers))
    advice = advise(with_deb, subject.config.target.answered({"os_packages": True}, "flag"))
    assert advice.recommended == "deb"
    assert "pex" in [a.tier for a in advice.alternatives]
    plain = advise(with_deb, subject.config.target)
    deb = next(s for s in plain.steps if s.tier == "deb")
    assert not deb.fits and "installs no OS packages" in deb.reason
    assert deb.change == "if the target installs .deb or .rpm packages"


def test_reasons_alternatives_and_what_would_change(subjects: dict[str, Subject]) -> None:
    subject = subjects["hello-app"]
    advice = advise(subject, subject.config.target)
    steps = {s.tier: s for s in advice.steps}
    assert "src/hello_app/cli.py:8" in steps["copy"].reason  # the attrs import, with its line
    assert "may not download" in steps["sdist"].reason
    assert steps["sdist"].change == "if the target may download packages at install time"
    assert steps["exe"].change == "if the target has no Python"
    assert [a.tier for a in advice.alternatives] == ["tarball", "exe"]
    exe = next(a for a in advice.alternatives if a.tier == "exe")
    assert "more to build" in exe.costs and "the OS and its C library" in exe.costs
    assert advice.chain == ("the target may not download, the target has a Python interpreter, "
                            "the target can make virtual environments (pex unpacks into one) "
                            "-> pex")


def test_project_facts_come_with_their_sources(subjects: dict[str, Subject]) -> None:
    facts = advise(subjects["compiled-ext"], subjects["compiled-ext"].config.target).facts
    project = facts["project"]
    assert project["compiled"] == {"value": True, "says": "has compiled extensions",
                                   "from": "src/fastsum/_speedups.c"}
    assert project["app"]["value"] is False
    assert project["single_module"]["value"] is False
    module = advise(subjects["single-module"], subjects["single-module"].config.target).facts
    assert module["project"]["single_module"]["says"] == "a single module, greet.py"
    assert module["project"]["stdlib_only"]["value"] is True
    assert module["project"]["micropython"] == {"value": True, "says": "MicroPython-compatible",
                                                "from": "the mpy tier's check"}
    hello = advise(subjects["hello-app"], subjects["hello-app"].config.target).facts
    assert hello["project"]["micropython"]["value"] is False
    assert "attrs" in hello["project"]["micropython"]["says"]
    assert hello["target"]["python"] == {"value": True, "from": "default",
                                         "says": "the target has a Python interpreter"}


def _contradiction_case(when: dict[str, bool]) -> tuple[str, dict[str, bool]]:
    example = "compiled-ext" if when.get("compiled") else "single-module"
    return example, {k: v for k, v in when.items() if k != "compiled"}


@pytest.mark.parametrize("rule", CONTRADICTIONS, ids=["+".join(
    f"{k}={v}" for k, v in r.when.items()) for r in CONTRADICTIONS])
def test_each_contradiction_names_its_facts(subjects: dict[str, Subject], rule: object) -> None:
    when: dict[str, bool] = rule.when  # type: ignore[attr-defined]
    example, answers = _contradiction_case(when)
    subject = subjects[example]
    with pytest.raises(Contradictory) as caught:
        advise(subject, subject.config.target.answered(answers, "flag"))
    message = caught.value.message
    assert rule.why in message  # type: ignore[attr-defined]
    for name, value in answers.items():
        assert f"--{'' if value else 'no-'}{name.replace('_', '-')}" in message
    if "compiled" in when:
        assert "src/fastsum/_speedups.c" in message


def test_defaults_never_contradict(subjects: dict[str, Subject]) -> None:
    """--no-python leaves the default virtualenv = true behind, it does not clash with it."""
    subject = subjects["hello-app"]
    advice = advise(subject, subject.config.target.answered({"python": False}, "flag"))
    assert advice.recommended == "exe"
    assert advice.facts["target"]["virtualenv"]["value"] is False


def advice(gradient: Gradient, project: Path, *flags: str,
           code: int = 0) -> dict[str, object]:
    result = gradient(project, "advise", "--json", *flags)
    assert result.returncode == code, result.stderr
    data: dict[str, object] = json.loads(result.stdout)
    return data


def test_the_command(example: Callable[..., Path], gradient: Gradient) -> None:
    app = example("hello-app")
    data = advice(gradient, app)
    assert set(data) == {"recommended", "facts", "steps", "alternatives"}
    assert data["recommended"] == "pex"
    assert advice(gradient, app, "--downloads")["recommended"] == "sdist"
    assert advice(gradient, app, "--no-python")["recommended"] == "exe"
    vm = advice(gradient, app, "--fact", "own_kernel=yes")
    assert vm["recommended"] == "vm"
    assert vm["facts"]["target"]["own_kernel"]["from"] == "--fact own_kernel=yes"  # type: ignore[index]
    human = gradient(app, "advise", "--no-virtualenv")
    assert human.returncode == 0
    assert "recommended: tarball" in human.stdout
    assert "src/hello_app/cli.py:8" in human.stdout
    assert "would change the answer: if the target has no Python: exe" in human.stdout
    clash = gradient(app, "advise", "--microcontroller", "--no-python")
    assert clash.returncode == 2
    assert "--microcontroller with --no-python" in clash.stderr
    bad = gradient(app, "advise", "--fact", "pyhton=no")
    assert bad.returncode == 2 and "did you mean 'python'" in bad.stderr


def test_target_table_and_flags(example: Callable[..., Path], gradient: Gradient) -> None:
    """[target] takes the facts under their flag names, says where an answer came from, and
    names the nearest for a typo."""
    app = example("hello-app", toml='tier = "wheel"\n[target]\nown_userspace = true\n'
                                    'distros = ["debian:bookworm"]\n')
    data = advice(gradient, app)
    assert data["recommended"] == "oci"
    facts = data["facts"]
    assert isinstance(facts, dict)
    assert facts["target"]["own_userspace"]["from"] == "gradient.toml:3"
    assert advice(gradient, app, "--no-own-userspace")["recommended"] == "pex"
    typo = example("hello-app", toml='tier = "wheel"\n[target]\nown_kernl = true\n')
    result = gradient(typo, "advise")
    assert result.returncode == 2
    assert "gradient.toml:3:" in result.stderr and "did you mean 'own_kernel'" in result.stderr
    wrong = example("hello-app", toml='tier = "wheel"\n[target]\npython = "yes"\n')
    assert "must be true or false" in gradient(wrong, "plan").stderr


def test_a_lazy_importing_module_is_still_a_copy(tmp_path: Path, gradient: Gradient) -> None:
    """The vendored-web-framework shape: stdlib at import time, optional servers inside
    functions. advise says copy, and lists them."""
    project = tmp_path / "mini"
    project.mkdir()
    (project / "mini.py").write_text(
        '"""A tiny framework."""\nimport json\n\n\ndef serve():\n    import gevent\n'
        '    return gevent\n\n\ndef render():\n    from jinja2 import Template\n'
        '    return Template\n')
    data = advice(gradient, project)
    assert data["recommended"] == "copy"
    facts = data["facts"]
    assert isinstance(facts, dict)
    assert facts["project"]["lazy_imports"]["value"] == ["gevent", "jinja2"]
    assert facts["project"]["lazy_imports"]["from"] == "mini.py:6"
    steps = data["steps"]
    assert isinstance(steps, list)
    assert "still a copy" in steps[0]["reason"]


def test_advise_build_proves_the_advice(example: Callable[..., Path],
                                        gradient: Gradient) -> None:
    module = example("single-module")
    (module / "gradient.toml").unlink()
    result = gradient(module, "advise", "--build")
    assert result.returncode == 0, result.stderr
    assert "recommended: copy" in result.stdout
    manifest = json.loads((module / "dist/gradient/manifest.json").read_text())
    copy = next(a for a in manifest["artifacts"] if a["tier"] == "copy")
    assert copy["verified"]
    failing = example("hello-app")
    (failing / "src/hello_app/cli.py").write_text("raise SystemExit(3)\n")
    assert gradient(failing, "advise", "--build").returncode == 1


def test_a_given_fact_explains_the_fit_before_one_it_implies(
        subjects: dict[str, Subject]) -> None:
    """own_kernel implies own_userspace; the vm fits because of the kernel it brings."""
    subject = subjects["hello-app"]
    advice = advise(subject, subject.config.target.answered({"own_kernel": True}, "flag"))
    assert advice.recommended == "vm"
    assert advice.chain == "the target needs the app to bring its own kernel (a VM image) -> vm"


def test_an_extras_requirement_does_not_keep_a_module_off_micropython(
        tmp_path: Path, gradient: Gradient) -> None:
    """Only what installs without extras counts: a `dev` extra is not the board's problem."""
    project = tmp_path / "blink"
    project.mkdir()
    (project / "blink.py").write_text('"""Blink."""\n\n\ndef main():\n    return 1\n')
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"'
        '\n\n[project]\nname = "blink"\nversion = "0.1"\n'
        '[project.optional-dependencies]\ndev = ["doc8"]\n')
    data = advice(gradient, project, "--microcontroller")
    assert data["recommended"] == "mpy", data["steps"]
