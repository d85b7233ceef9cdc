"""gradient.toml: packaging decisions only, validated against typed models with line numbers."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import tomli

from . import options as opt
from .errors import ConfigError
from .facts import CORE_FACTS, LISTS, Fact, Target

CONFIG_NAME = "gradient.toml"


@dataclass
class AppOptions:
    script: str | None = opt.doc("a [project.scripts] name; default: the only one there", None)
    entry: str | None = opt.doc("an explicit entry point, 'package.module:function'", None)
    module: str | None = opt.doc("a single-module project: the module's path (copy tier)", None)


@dataclass
class VerifyOptions:
    args: list[str] | None = opt.doc("arguments to the app for the smoke run", None)
    expect: str | None = opt.doc("text that must appear in the smoke run's output", None)
    code: str | None = opt.doc("Python run by the target's interpreter, for libraries", None)
    timeout: int = opt.doc("seconds the smoke may take", 120)


@dataclass
class SecretsOptions:
    allow: list[str] = opt.doc("glob patterns of artifact paths the secret scan lets through", [])


@dataclass
class CacheOptions:
    remote: str | None = opt.doc("an OCI registry every checkout shares, 'oci://HOST/REPO' "
                                 "(GRADIENT_CACHE_REMOTE beats it)", None)
    mode: Literal["read", "readwrite", "off"] = opt.doc(
        "what builds do with the remote: read it, also write to it, or ignore it "
        "(--cache-mode and GRADIENT_CACHE_MODE beat it)", "readwrite")
    insecure: bool | None = opt.doc("plain HTTP to the registry (default: only for "
                                    "localhost and 127.x)", None)


@dataclass
class MatrixOptions:
    tiers: list[str] = opt.doc("the tiers CI fans out (default: `tier`)", [])
    python: list[str] = opt.doc("Python versions, one shard each, e.g. [\"3.11\", \"3.12\"]", [])
    platforms: list[str] = opt.doc("where shards run, e.g. linux-x86_64, linux-aarch64, "
                                   "macos-arm64", ["linux-x86_64"])
    runners: dict[str, str] = opt.doc("a runner label (GitHub runs-on, GitLab tag) per "
                                      "platform", {})
    image: str | None = opt.doc("GitLab: the jobs' container image, {python} replaced by the "
                                "shard's version, e.g. 'python:{python}-slim'", None)
    install: list[str] = opt.doc("the commands that install gradient in a job",
                                 ["python -m pip install 'gradient-build[all]'"])
    publish: list[str] = opt.doc("commands the merge job runs after a good merge", [])


@dataclass
class Document:
    """The top level of gradient.toml (per-tier tables are validated by their backends)."""

    tier: str | list[str] = opt.doc("the tier(s) `gradient build` builds", [])
    app: AppOptions | None = opt.doc("what the artifact runs", None)
    verify: VerifyOptions | None = opt.doc("the smoke test every tier runs", None)
    target: dict[str, Any] = opt.doc("facts about where the project is going", {})
    secrets: SecretsOptions | None = opt.doc("the secret scan run before promotion", None)
    tiers: dict[str, dict[str, Any]] = opt.doc("per-tier option tables", {})
    cache: CacheOptions | None = opt.doc("a remote cache shared through an OCI registry", None)
    matrix: MatrixOptions | None = opt.doc("the CI fan-out `gradient matrix` writes", None)


@dataclass
class Config:
    """A validated gradient.toml."""

    path: Path
    tiers: list[str]
    app: AppOptions = field(default_factory=AppOptions)
    verify: VerifyOptions = field(default_factory=VerifyOptions)
    target: Target = field(default_factory=lambda: Target({}, known_facts()))
    secrets: SecretsOptions = field(default_factory=SecretsOptions)
    tier_options: dict[str, Any] = field(default_factory=dict)
    cache: CacheOptions = field(default_factory=CacheOptions)
    matrix: MatrixOptions = field(default_factory=MatrixOptions)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        return self.path.parent

    def error(self, message: str, *keys: str, suggestion: str | None = None) -> ConfigError:
        """A ConfigError pointing at `keys` in this file."""
        line = locate(self.path.read_text(), keys) if self.path.exists() else None
        return ConfigError(message, file=str(self.path), line=line, key=".".join(keys) or None,
                           suggestion=suggestion)


def known_facts(extra: tuple[Fact, ...] = ()) -> dict[str, Fact]:
    """The facts [target] accepts: the core's and those the installed tiers declare."""
    return {f.name: f for f in (*CORE_FACTS, *extra)}


def _target(table: dict[str, Any], facts: dict[str, Fact],
            fail: Any, where: Any = None) -> Target:
    answers: dict[str, bool] = {}
    origin: dict[str, str] = {}
    distros: tuple[str, ...] = ()
    for key, value in table.items():
        if key in LISTS:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise fail(opt.OptionError(("target", key), "must be a list of strings"))
            distros = tuple(value)
        elif key in facts:
            if not isinstance(value, bool):
                raise fail(opt.OptionError(("target", key), f"must be true or false, not "
                                                            f"{value!r}"))
            answers[key] = value
            origin[key] = where(key) if where else "[target]"
        else:
            raise fail(opt.OptionError(("target", key), f"unknown fact {key!r} (facts here: "
                                       f"{', '.join([*facts, *LISTS])})",
                                       opt.nearest(key, [*facts, *LISTS])))
    return Target(answers, facts, distros, origin)


def load(path: Path, option_models: dict[str, type[Any]],
         broken: dict[str, str] | None = None, facts: dict[str, Fact] | None = None) -> Config:
    """Read and validate `path`; `option_models` maps each registered tier to its Options."""
    if not path.exists():
        raise ConfigError(f"no {path.name} here: run `gradient init` to write one",
                          file=str(path))
    text = path.read_text(encoding="utf-8")
    try:
        data = tomli.loads(text)
    except tomli.TOMLDecodeError as exc:  # tomli >= 2.1 says where, as numbers
        raise ConfigError(f"not valid TOML: {exc.msg} (line {exc.lineno}, column {exc.colno})",
                          file=str(path), line=exc.lineno) from None
    return parse(data, path, text, option_models, broken or {}, facts)


def parse(data: dict[str, Any], path: Path, text: str,
          option_models: dict[str, type[Any]], broken: dict[str, str] | None = None,
          facts: dict[str, Fact] | None = None) -> Config:
    def fail(exc: opt.OptionError) -> ConfigError:
        keys = tuple(k for k in exc.path if not k.isdigit())
        return ConfigError(exc.message, file=str(path), line=locate(text, keys),
                           key=".".join(exc.path), suggestion=exc.suggestion)

    try:
        doc = opt.load(Document, data)
    except opt.OptionError as exc:
        raise fail(exc) from None
    tiers_table = doc.tiers

    def check_tier(name: str, keys: tuple[str, ...]) -> None:
        if name in (broken or {}):
            raise ConfigError(f"tier {name!r} is installed but its backend is broken: "
                              f"{(broken or {})[name]}", file=str(path),
                              line=locate(text, keys), key=".".join(keys))
        if name not in option_models:
            known = ", ".join(option_models)
            raise ConfigError(f"unknown tier {name!r} (tiers here: {known})", file=str(path),
                              line=locate(text, keys), key=".".join(keys),
                              suggestion=opt.nearest(name, option_models))

    wanted = [doc.tier] if isinstance(doc.tier, str) else list(doc.tier)
    for name in wanted:
        check_tier(name, ("tier",))
    tier_options: dict[str, Any] = {}
    for name, model in option_models.items():
        table = tiers_table.get(name, {})
        try:
            tier_options[name] = opt.load(model, table, ("tiers", name))
        except opt.OptionError as exc:
            raise fail(exc) from None
    for name in tiers_table:
        check_tier(name, ("tiers", name))
    app = doc.app or AppOptions()
    if app.script and app.entry:
        raise ConfigError("set either script or entry, not both", file=str(path),
                          line=locate(text, ("app", "entry")), key="app.entry")
    if app.entry and not re.fullmatch(r"[\w.]+:[\w.]+", app.entry):
        raise ConfigError(f"entry must look like 'package.module:function', not {app.entry!r}",
                          file=str(path), line=locate(text, ("app", "entry")), key="app.entry")
    return Config(path=path, tiers=wanted, app=app, verify=doc.verify or VerifyOptions(),
                  target=_target(doc.target, facts or known_facts(), fail,
                                 lambda key: f"{path.name}:{locate(text, ('target', key))}"),
                  secrets=doc.secrets or SecretsOptions(), tier_options=tier_options,
                  cache=doc.cache or CacheOptions(), matrix=_matrix(doc.matrix, fail, check_tier),
                  raw=data)


def _matrix(matrix: MatrixOptions | None, fail: Any, check_tier: Any) -> MatrixOptions:
    """[matrix], its tiers known and each platform spelled OS-ARCH."""
    found = matrix or MatrixOptions()
    for name in found.tiers:
        check_tier(name, ("matrix", "tiers"))
    for index, platform in enumerate(found.platforms):
        if not re.fullmatch(r"(linux|macos|windows)-[a-z0-9_]+", platform):
            raise fail(opt.OptionError(("matrix", "platforms", str(index)),
                                       f"platform {platform!r} is not OS-ARCH (linux-x86_64, "
                                       "linux-aarch64, macos-arm64, windows-amd64)"))
    for index, version in enumerate(found.python):
        if not re.fullmatch(r"3\.\d+", version):
            raise fail(opt.OptionError(("matrix", "python", str(index)),
                                       f"python {version!r} is not a version like \"3.12\""))
    return found


_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


def _split_dotted(key: str) -> tuple[str, ...]:
    return tuple(part.strip().strip("\"'") for part in re.findall(r'"[^"]*"|\'[^\']*\'|[^.]+', key))


def locate(text: str, keys: tuple[str, ...]) -> int | None:
    """The line where the key path `keys` is written (a table header or a `key =` line)."""
    if not keys:
        return None
    table: tuple[str, ...] = ()
    best: int | None = None
    for number, line in enumerate(text.splitlines(), 1):
        header = _HEADER.match(line)
        if header:
            table = _split_dotted(header.group(1))
            if table == keys:
                return number
            if best is None and table == keys[: len(table)] and table:
                best = number
            continue
        assign = re.match(r'^\s*("[^"]*"|\'[^\']*\'|[\w.-]+)\s*=', line)
        if assign:
            full = table + _split_dotted(assign.group(1))
            if full == keys[: len(full)] and full:
                return number
    return best


def json_schema(option_models: dict[str, type[Any]],
                facts: dict[str, Fact] | None = None) -> dict[str, Any]:
    """The JSON Schema of gradient.toml for editors, generated from the models."""
    top = opt.schema(Document)
    top["properties"]["target"] = {
        "type": "object", "additionalProperties": False,
        "description": "facts about where the project is going",
        "properties": {
            **{f.name: {"type": "boolean", "default": f.default,
                        "description": f"the target {f.has}"}
               for f in (facts or known_facts()).values()},
            **{name: {"type": "array", "items": {"type": "string"}, "description": text}
               for name, text in LISTS.items()}}}
    top["properties"]["tier"] = {"anyOf": [
        {"enum": sorted(option_models)},
        {"type": "array", "items": {"enum": sorted(option_models)}},
    ], "description": "the tier(s) `gradient build` builds"}
    top["properties"]["tiers"] = {
        "type": "object", "additionalProperties": False,
        "description": "per-tier option tables",
        "properties": {name: opt.schema(model) for name, model in sorted(option_models.items())},
    }
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "gradient.toml", **top}
