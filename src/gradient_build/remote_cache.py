"""A shared node cache in an OCI registry ([cache] remote = "oci://HOST/REPO"), through oras.

One OCI artifact per node key: the entry's out/ folder as one tar layer (pushing files one
by one would flatten their folders into basenames), and artifact.json plus the verification
records as the config blob. Tags are a digest of the key (a tag over 128 characters fails
with a `Not Found` that looks like a miss). A registry that does not answer is a miss with
one warning, never a failed build; credentials come from the environment or the Docker
config file and are never printed (only the registry's host/repo is).
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import re
import tarfile
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .options import nearest


class SettingError(ValueError):
    """A bad remote or mode; the CLI says where it came from (gradient.toml, env, flag)."""

    def __init__(self, setting: str, message: str, suggestion: str | None = None) -> None:
        super().__init__(message)
        self.setting, self.message, self.suggestion = setting, message, suggestion


Mode = Literal["read", "readwrite", "off"]
MODES: tuple[str, ...] = ("read", "readwrite", "off")
LAYER_TYPE = "application/vnd.gradient.entry.layer.v1.tar"
CONFIG_TYPE = "application/vnd.gradient.entry.config.v1+json"
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
PROBE_SECONDS = 3.0
REQUEST_SECONDS = 120.0


def tag_for(key: str) -> str:
    """A valid OCI tag for a cache key: the key itself when it is one, else its digest."""
    return key if TAG.fullmatch(key) and len(key) <= 128 else \
        "sha256-" + hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Location:
    host: str
    repo: str

    @property
    def url(self) -> str:
        return f"oci://{self.host}/{self.repo}"

    @property
    def loopback(self) -> bool:
        name = self.host.rsplit(":", 1)[0] if not self.host.startswith("[") else self.host
        return name in ("localhost", "[::1]") or name.startswith("127.")


def parse_location(text: str) -> Location:
    """oci://HOST[:PORT]/REPO[/MORE] -> Location (ConfigError naming the expected form)."""
    rest = text.removeprefix("oci://")
    host, _, repo = rest.partition("/")
    if not text.startswith("oci://") or not host or not repo or "@" in host:
        shown = text.split("@")[-1] if "@" in text else text  # never echo credentials
        raise SettingError("remote", f"remote cache {shown!r} is not oci://HOST/REPO "
                           "(credentials do not belong in it: use GRADIENT_CACHE_REMOTE_USER/"
                           "_PASSWORD or `docker login`)")
    if not re.fullmatch(r"[a-z0-9]+(?:[._/-][a-z0-9]+)*", repo):
        raise SettingError("remote", f"remote cache repository {repo!r} must be lowercase "
                           "letters and digits with . _ - / separators")
    return Location(host, repo)


def _tar(out: Path) -> bytes:
    """out/ as a reproducible tar: sorted, no owners, the recorded mtimes kept."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(out.rglob("*")):
            info = tar.gettarinfo(str(path), path.relative_to(out).as_posix())
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if path.is_file() and not path.is_symlink():
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)
    return buffer.getvalue()


@dataclass
class RemoteStore:
    """The registry side of the cache: `fetch` fills a directory, `push` sends one."""

    location: Location
    mode: Mode = "readwrite"
    insecure: bool = False
    warn: Callable[[str], None] = field(default=lambda _text: None)
    hits: set[str] = field(default_factory=set)
    _client: Any = None
    _down: str | None = None
    _checked: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def readable(self) -> bool:
        return self.mode in ("read", "readwrite")

    @property
    def writable(self) -> bool:
        return self.mode == "readwrite"

    def _target(self, key: str) -> str:
        return f"{self.location.host}/{self.location.repo}:{tag_for(key)}"

    def _connect(self) -> Any:
        """The oras client, once the registry answered a short probe (oras itself retries a
        dead registry for minutes); None while it is down or oras is not installed."""
        if self._checked:
            return self._client
        self._checked = True
        try:
            import oras.logger
            import oras.provider
            import requests
        except ImportError:
            self._fail("the oras package is not installed (pip install 'gradient-build[remote]')")
            return None
        class Registry(oras.provider.Registry):  # type: ignore[misc]
            # oras retries a failed request 5 times, sleeping up to 83 s: a dead registry
            # would stall every node for minutes. One try; trouble marks the remote down.
            do_request = oras.provider.Registry.do_request.__wrapped__

        oras.logger.setup_logger(quiet=True)
        client = Registry(hostname=self.location.host, insecure=self.insecure)
        client.session.request = functools.partial(client.session.request,
                                                   timeout=(PROBE_SECONDS, REQUEST_SECONDS))
        user = os.environ.get("GRADIENT_CACHE_REMOTE_USER")
        if user:
            client.auth.set_basic_auth(user, os.environ.get(
                "GRADIENT_CACHE_REMOTE_PASSWORD", ""))
        scheme = "http" if self.insecure else "https"
        try:
            answer = requests.get(f"{scheme}://{self.location.host}/v2/", timeout=PROBE_SECONDS)
        except requests.RequestException as exc:
            self._fail(f"does not answer ({type(exc).__name__})")
            return None
        if answer.status_code not in (200, 401):
            self._fail(f"answered HTTP {answer.status_code} at /v2/")
            return None
        self._client = client
        return client

    def _fail(self, why: str) -> None:
        self._down = why
        self._client = None
        self.warn(f"remote cache {self.location.url} {why}: building without it")

    def fetch(self, key: str, dest: Path) -> bool:
        """Fill `dest` with the entry stored under `key` (out/, artifact.json, verify-*.json);
        False on a miss or any registry trouble (warned once)."""
        if not self.readable:
            return False
        with self._lock:
            client = self._connect()
            if client is None:
                return False
            try:
                manifest = client.get_manifest(self._target(key))
            except Exception as exc:  # a 404 is a ValueError with the response's text
                if _unreachable(exc):
                    self._fail(_trouble(exc))
                return False
            try:
                return self._unpack(client, key, manifest, dest)
            except Exception as exc:
                if _unreachable(exc):
                    self._fail(_trouble(exc))
                    return False
                self.warn(f"remote cache entry {tag_for(key)[:16]} is unusable "
                          f"({type(exc).__name__}): building it instead")
                return False

    def peek(self, key: str) -> dict[str, Any] | None:
        """The stored entry's record (artifact.json) without its files: what `gradient plan`
        needs to say "remote hit" and key the nodes after it; None on a miss."""
        if not self.readable:
            return None
        with self._lock:
            client = self._connect()
            if client is None:
                return None
            try:
                manifest = client.get_manifest(self._target(key))
                if manifest.get("config", {}).get("mediaType") != CONFIG_TYPE:
                    return None
                container = client.get_container(self._target(key))
                with tempfile.TemporaryDirectory(prefix="gradient-peek-") as tmp:
                    config = Path(tmp) / "config.json"
                    client.download_blob(container, manifest["config"]["digest"], str(config))
                    record: dict[str, Any] = json.loads(config.read_text())["entry"]
            except Exception as exc:
                if _unreachable(exc):
                    self._fail(_trouble(exc))
                return None
        self.hits.add(key)
        return record

    def _unpack(self, client: Any, key: str, manifest: dict[str, Any], dest: Path) -> bool:
        container = client.get_container(self._target(key))
        layers = [x for x in manifest.get("layers", []) if x.get("mediaType") == LAYER_TYPE]
        if manifest.get("config", {}).get("mediaType") != CONFIG_TYPE or len(layers) != 1:
            return False
        with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
            config_file, layer_file = Path(tmp) / "config.json", Path(tmp) / "out.tar"
            client.download_blob(container, manifest["config"]["digest"], str(config_file))
            client.download_blob(container, layers[0]["digest"], str(layer_file))
            for blob, want in ((config_file, manifest["config"]["digest"]),
                               (layer_file, layers[0]["digest"])):
                if "sha256:" + _sha256(blob) != want:
                    raise ValueError(f"{blob.name} does not match its digest")
            config = json.loads(config_file.read_text())
            out = dest / "out"
            out.mkdir(parents=True)
            with tarfile.open(layer_file) as tar:
                tar.extractall(out, filter="data")
        record = config["entry"]
        for rel, digest in record["digests"].items():
            path = out / rel
            if _sha256(path) != digest["sha256"]:
                raise ValueError(f"{rel} does not match its recorded sha256")
            os.utime(path, ns=(digest["mtime_ns"], digest["mtime_ns"]))
        (dest / "artifact.json").write_text(json.dumps(record, indent=1))
        (dest / "inputs.json").write_text(json.dumps(config.get("inputs", {})))
        for name, verdict in config.get("verdicts", {}).items():
            (dest / f"verify-{name}.json").write_text(json.dumps(verdict, indent=1))
        self.hits.add(key)
        return True

    def push(self, key: str, entry: Path) -> None:
        """Send the entry directory `entry` under `key` (again, when its verdicts grew)."""
        if not self.writable:
            return
        with self._lock:
            client = self._connect()
            if client is None:
                return
            try:
                self._send(client, key, entry)
            except Exception as exc:
                if _unreachable(exc):
                    self._fail(_trouble(exc))
                    return
                self.warn(f"remote cache {self.location.url}: storing {tag_for(key)[:16]} "
                          f"failed ({type(exc).__name__}); the local cache has it")

    def _send(self, client: Any, key: str, entry: Path) -> None:
        verdicts = {p.name.removeprefix("verify-").removesuffix(".json"): json.loads(
            p.read_text()) for p in sorted(entry.glob("verify-*.json"))}
        inputs = entry / "inputs.json"
        config = {"entry": json.loads((entry / "artifact.json").read_text()),
                  "inputs": json.loads(inputs.read_text()) if inputs.exists() else {},
                  "verdicts": verdicts}
        with tempfile.TemporaryDirectory(prefix="gradient-push-") as tmp:
            layer = Path(tmp) / "out.tar"
            layer.write_bytes(_tar(entry / "out"))
            config_file = Path(tmp) / "config.json"
            config_file.write_text(json.dumps(config, sort_keys=True, indent=1))
            client.push(target=self._target(key), files=[f"{layer}:{LAYER_TYPE}"],
                        manifest_config=f"{config_file}:{CONFIG_TYPE}",
                        manifest_annotations={"org.gradient-build.key": key},
                        disable_path_validation=True, quiet=True)


def _unreachable(exc: Exception) -> bool:
    """A network failure (refused, reset, timed out), not an answer like a 404."""
    return type(exc).__module__.startswith(("requests", "urllib3")) or isinstance(exc, OSError)


def _trouble(exc: Exception) -> str:
    """Words for a failed request: the exception's class, never its text (a URL or header
    in it could carry a credential)."""
    name = type(exc).__name__
    gone = ("ConnectionError", "Timeout", "ReadTimeout", "ConnectTimeout")
    return f"stopped answering ({name})" if name in gone else f"failed ({name})"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def from_settings(remote: str | None, config_mode: str, cli_mode: str | None,
                  insecure: bool | None, warn: Callable[[str], None]) -> RemoteStore | None:
    """The remote store [cache] and the environment ask for; None when there is none or
    the mode is off. GRADIENT_CACHE_REMOTE beats [cache] remote; --cache-mode beats
    GRADIENT_CACHE_MODE, which beats [cache] mode."""
    where = os.environ.get("GRADIENT_CACHE_REMOTE") or remote
    chosen = cli_mode or os.environ.get("GRADIENT_CACHE_MODE") or config_mode
    if chosen not in MODES:
        raise SettingError("mode", f"cache mode must be one of {', '.join(MODES)}, not "
                           f"{chosen!r}", nearest(chosen, MODES))
    if not where or chosen == "off":
        return None
    location = parse_location(where)
    plain = insecure if insecure is not None else location.loopback
    return RemoteStore(location, chosen, plain, warn)  # type: ignore[arg-type]
