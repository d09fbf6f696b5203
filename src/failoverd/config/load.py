"""Reading configuration files: every problem becomes one `FILE:LINE: ...` ConfigError.

The steps, each of which may fail with its own message: read the bytes (missing,
unreadable, directory, empty, binary), parse TOML (syntax), validate against
the schema (unknown keys, types, durations, ranges, cross-field rules), resolve
relative paths against the file's directory, and check the files the
configuration points at (secrets, passwords).
"""

import logging
import re
import stat
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from failoverd.config.durations import format_duration
from failoverd.config.errors import ConfigError, ConfigWarning
from failoverd.config.explain import explain
from failoverd.config.locate import dotted, locate
from failoverd.config.schema import (
    ClusterSection,
    LoginCheck,
    NodeConfig,
    WitnessConfig,
)
from failoverd.core.types import SafetyMode, ScriptPhase

WarningSink = Callable[[ConfigWarning], None]
M = TypeVar("M", bound=BaseModel)
Loc = tuple[str | int, ...]

SECRET_MIN_BYTES = 32
_TOML_POSITION = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)$")
_TOML_HINTS = {
    "Invalid value": 'a string needs quotes, e.g. safety = "witness", dead_time = "1s"',
    "Invalid statement": "each line is key = value, [table] or [[array-of-tables]]",
    "Cannot overwrite a value": "this key is given twice: keep one",
    "Cannot declare": "this table is declared twice: merge the two",
    "Expected '=' after a key in a key/value pair": "write key = value",
    "Unterminated string": "close the string with its quote on the same line",
}
_log = logging.getLogger(__name__)


def _log_warning(warning: ConfigWarning) -> None:
    _log.warning("%s", warning)


def read_text(path: Path) -> str:
    """The file's text, or a ConfigError saying why it is not a readable text file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(path, None, "no such file: check the path") from None
    except IsADirectoryError:
        raise ConfigError(path, None, "is a directory: give the path of the file") from None
    except PermissionError:
        raise ConfigError(
            path, None, "permission denied: run as a user who may read it (e.g. root)"
        ) from None
    except OSError as e:
        raise ConfigError(path, None, f"cannot read it: {e.strerror or e}") from None
    if not data.strip():
        raise ConfigError(path, 1, "the file is empty: write the configuration into it")
    nul = data.find(b"\0")
    if nul >= 0:
        raise ConfigError(
            path,
            data.count(b"\n", 0, nul) + 1,
            "NUL byte: this is a binary file, not a text configuration: check the path",
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConfigError(
            path,
            data.count(b"\n", 0, e.start) + 1,
            f"byte 0x{data[e.start]:02x} is not UTF-8 text: save the file as UTF-8",
        ) from None


@dataclass(frozen=True, slots=True)
class _Source:
    """A configuration file's path and text, to turn key paths into line numbers."""

    path: Path
    text: str

    def error(self, loc: Sequence[str | int], message: str) -> ConfigError:
        return ConfigError(self.path, locate(self.text, loc), message)

    def warning(self, loc: Sequence[str | int], message: str) -> ConfigWarning:
        return ConfigWarning(self.path, locate(self.text, loc), message)

    def parse(self) -> dict[str, Any]:
        try:
            return tomllib.loads(self.text)
        except tomllib.TOMLDecodeError as e:
            raise self._syntax_error(str(e)) from None

    def _syntax_error(self, message: str) -> ConfigError:
        m = _TOML_POSITION.search(message)
        what = message[: m.start()] if m else message
        if m is None or m.group(1) is None:
            line = self.text.count("\n") + 1 - self.text.endswith("\n")
            where = ""
        else:
            line, where = int(m.group(1)), f" (column {m.group(2)})"
        hint = next((h for prefix, h in _TOML_HINTS.items() if what.startswith(prefix)), None)
        return ConfigError(
            self.path,
            line,
            f"TOML syntax error{where}: {what}: {hint or 'fix the syntax'}",
        )

    def validate(self, model: type[M], data: dict[str, Any]) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as e:
            loc, message = explain(model, e.errors(), self.text)
            raise self.error(loc, message) from None


def _resolved(value: object, base: Path) -> object:
    if isinstance(value, Path):
        return base / value  # an absolute value stays as it is
    if isinstance(value, BaseModel):
        return value.model_copy(update={k: _resolved(v, base) for k, v in value})
    if isinstance(value, list):
        return [_resolved(v, base) for v in value]
    return value


def _with_base(model: M, base: Path) -> M:
    """`model` with every relative path made relative to `base` (the file's directory)."""
    resolved = _resolved(model, base)
    assert isinstance(resolved, type(model))
    return resolved


def _private_bytes(path: Path, create: str) -> bytes:
    """Content of a file that must exist, be regular, private to its owner and readable."""
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(path, None, "is not a regular file: give the path of a file")
        if st.st_mode & 0o077:
            raise ConfigError(
                path,
                None,
                f"group or others may access it (mode {stat.S_IMODE(st.st_mode):04o}): "
                f"run chmod 600 {path}",
            )
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(path, None, f"no such file: {create}") from None
    except PermissionError:
        raise ConfigError(
            path, None, "permission denied: the daemon's user must be able to read it"
        ) from None
    except OSError as e:
        raise ConfigError(path, None, f"cannot read it: {e.strerror or e}") from None


def read_secret_file(path: Path) -> bytes:
    """The cluster key held in `path`, after the checks a secret deserves.

    One trailing newline is stripped (secrets written with `echo` or an editor);
    what remains must be at least SECRET_MIN_BYTES long.
    """
    create = f"create it with: head -c 64 /dev/urandom > {path} && chmod 600 {path}"
    data = _private_bytes(path, create)
    key = data.removesuffix(b"\n")
    if len(key) < SECRET_MIN_BYTES:
        raise ConfigError(
            path,
            None,
            f"holds {len(key)} bytes, fewer than {SECRET_MIN_BYTES} (a trailing newline does "
            f"not count): {create}",
        )
    return key


load_secret = read_secret_file  # the name the daemon's key loading uses


def check_password_file(path: Path) -> None:
    """A password file must exist, be readable and be private to its owner."""
    _private_bytes(path, f"create it holding the password, then run chmod 600 {path}")


def _cluster_secrets(cluster: ClusterSection) -> list[tuple[Loc, Path]]:
    keys: list[tuple[Loc, Path]] = [(("cluster", "secret_file"), cluster.secret_file)]
    keys += [
        (("cluster", "accept_keys", i, "secret_file"), k.secret_file)
        for i, k in enumerate(cluster.accept_keys)
    ]
    return keys


def _password_files(cfg: NodeConfig) -> list[tuple[Loc, Path]]:
    files: list[tuple[Loc, Path]] = [
        (("check", i, "password_file"), c.password_file)
        for i, c in enumerate(cfg.check)
        if isinstance(c, LoginCheck) and c.password_file is not None
    ]
    mail = cfg.alerts.mail
    if mail is not None and mail.password_file is not None:
        files.append((("alerts", "mail", "password_file"), mail.password_file))
    return files


def _check_files(
    source: _Source,
    secrets: list[tuple[Loc, Path]],
    passwords: list[tuple[Loc, Path]],
) -> None:
    checks: list[tuple[Loc, Path, Callable[[Path], object]]]
    checks = [(loc, p, read_secret_file) for loc, p in secrets]
    checks += [(loc, p, check_password_file) for loc, p in passwords]
    for loc, path, check in checks:
        try:
            check(path)
        except ConfigError as e:
            raise source.error(loc, f"{dotted(loc)} {path}: {e.message}") from None


def _node_warnings(cfg: NodeConfig) -> list[tuple[Loc, str]]:
    warnings: list[tuple[Loc, str]] = []
    if cfg.cluster.safety is SafetyMode.COOPERATIVE:
        warnings.append(
            (
                ("cluster", "safety"),
                'safety = "cooperative" is unsafe under a network partition: both nodes may run '
                'the service at once; use safety = "witness" (recommended) or "fence"',
            )
        )
    budget = cfg.scripts.budget(ScriptPhase.SHUTDOWN)
    if cfg.timing.shutdown_timeout != "auto" and cfg.shutdown_timeout < budget:
        warnings.append(
            (
                ("timing", "shutdown_timeout"),
                f"shutdown_timeout ({format_duration(cfg.shutdown_timeout)}) is shorter than "
                f"the shutdown scripts' timeouts ({format_duration(budget)}): the standby may "
                f'start while the primary is still shutting down; raise it or use "auto"',
            )
        )
    return warnings


def _read(path: Path) -> tuple[_Source, dict[str, Any]]:
    source = _Source(path, read_text(path))
    return source, source.parse()


def _node(source: _Source, data: dict[str, Any], on_warning: WarningSink) -> NodeConfig:
    cfg = source.validate(NodeConfig, data)
    base = source.path.absolute().parent
    cfg = _with_base(cfg, base)
    if cfg.scripts.working_dir is None:
        scripts = cfg.scripts.model_copy(update={"working_dir": base})
        cfg = cfg.model_copy(update={"scripts": scripts})
    _check_files(source, _cluster_secrets(cfg.cluster), _password_files(cfg))
    for loc, message in _node_warnings(cfg):
        on_warning(source.warning(loc, message))
    return cfg


def _witness(source: _Source, data: dict[str, Any]) -> WitnessConfig:
    cfg = _with_base(source.validate(WitnessConfig, data), source.path.absolute().parent)
    _check_files(source, _cluster_secrets(cfg.cluster), [])
    return cfg


def load_node_config(path: Path | str, on_warning: WarningSink = _log_warning) -> NodeConfig:
    """A node's validated configuration, relative paths resolved; warnings go to `on_warning`."""
    return _node(*_read(Path(path)), on_warning)


def load_witness_config(path: Path | str) -> WitnessConfig:
    """A witness's validated configuration, relative paths resolved."""
    return _witness(*_read(Path(path)))


def _is_witness_file(data: dict[str, Any]) -> bool:
    """A witness file has a [witness] table and neither [node] nor [peer]."""
    return "witness" in data and "node" not in data and "peer" not in data


def load_config(
    path: Path | str, on_warning: WarningSink = _log_warning
) -> NodeConfig | WitnessConfig:
    """A node's or a witness's configuration, told apart by their top-level tables."""
    source, data = _read(Path(path))
    return _witness(source, data) if _is_witness_file(data) else _node(source, data, on_warning)
