"""Finding and reading omen.toml: seed spellings, OMEN_* overrides, env: secrets, problems."""

import copy
import difflib
import os
import re
import tomllib
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict, SettingsError

from omen.config.model import (
    PROVIDER_TYPES,
    ConfigError,
    OmenConfig,
    Problem,
    QuotaConfig,
    cross_check,
)

Table = dict[str, Any]

# Keys a Boltfile's [services.NAME.omen] holds for Bolt itself (where to find Omen), not for Omen.
_BOLTFILE_CLIENT_KEYS = ("endpoint",)


@dataclass
class LoadedConfig:
    config: OmenConfig
    path: Path | None
    warnings: list[Problem] = field(default_factory=list)


def find_config_path(cli_path: str | None, env: Mapping[str, str] = os.environ) -> Path | None:
    """--config, then $OMEN_CONFIG, then ./omen.toml; None when there is none (defaults apply)."""
    for given, how in (
        (cli_path, "given with --config"),
        (env.get("OMEN_CONFIG"), "from $OMEN_CONFIG"),
    ):
        if given:
            path = Path(given).expanduser()
            if not path.is_file():
                raise ConfigError([Problem(given, f"no such file ({how})")])
            return path.absolute()
    local = Path("omen.toml")
    return local.absolute() if local.is_file() else None


def load_config(path: Path | None, env: Mapping[str, str] = os.environ) -> LoadedConfig:
    """The checked configuration; raises ConfigError listing every problem when it has errors."""
    problems, loaded = check_config(path, env)
    if loaded is None:
        raise ConfigError(problems)
    return loaded


def check_config(
    path: Path | None, env: Mapping[str, str] = os.environ
) -> tuple[list[Problem], LoadedConfig | None]:
    """Every problem (errors first, then warnings), and the config when there are no errors."""
    raw = _read_toml(path) if path is not None else {}
    if isinstance(raw, Problem):
        return [raw], None
    origins = _Origins()
    problems: list[Problem] = []
    _refuse_name_keys(raw, problems)
    _accept_seed_forms(raw, origins, problems)
    raw, secrets = _resolve_env_references(raw, env, problems)
    _apply_env_overrides(raw, env, origins, problems)
    _apply_env_defaults(raw, env, secrets, problems)
    config, errors = _validate(raw)
    problems += errors
    if config is not None:
        provider_names = _table_names(raw, "providers", config.providers)
        container_names = _table_names(raw, "containers", config.containers)
        problems += cross_check(config, provider_names, container_names)
        from_env = "server.database" in origins.env_var
        config.server.database = _database_path(config.server.database, path, from_env)
    problems = [origins.locate(_redact(problem, secrets)) for problem in problems]
    problems.sort(key=lambda problem: problem.severity != "error")
    if config is None or any(problem.severity == "error" for problem in problems):
        return problems, None
    return problems, LoadedConfig(config, path, problems)


def _read_toml(path: Path) -> Table | Problem:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except tomllib.TOMLDecodeError as exc:
        reason = str(exc)
        return Problem(str(path), f"not valid TOML: {reason[:1].lower()}{reason[1:]}")
    except UnicodeDecodeError:
        return Problem(str(path), "not UTF-8 text")
    except OSError as exc:
        return Problem(str(path), f"cannot read: {exc.strerror}")


@dataclass
class _Origins:
    """Where a value was written when that is not its canonical path, so problems point there."""

    written_at: dict[str, str] = field(default_factory=dict)  # canonical path -> path in the file
    env_var: dict[str, str] = field(default_factory=dict)  # canonical path -> OMEN_* variable

    def locate(self, problem: Problem) -> Problem:
        path, message = problem.path, problem.message
        for prefix in sorted(self.written_at, key=len, reverse=True):
            if _is_under(path, prefix):
                path = self.written_at[prefix] + path[len(prefix) :]
                break
        for prefix, variable in self.env_var.items():
            if _is_under(problem.path, prefix):
                message += f" (from ${variable})"
                break
        return Problem(path, message, problem.severity)


def _is_under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + ".")


def _refuse_name_keys(raw: Table, problems: list[Problem]) -> None:
    """A provider's or container's name is its table's name; a `name` key would contradict it."""
    for section in ("providers", "containers"):
        tables = raw.get(section)
        for key, table in (tables if isinstance(tables, dict) else {}).items():
            if isinstance(table, dict) and table.pop("name", key) != key:
                message = f"remove this key: the name is the table's name, {key!r}"
                problems.append(Problem(f"{section}.{key}.name", message))


def _accept_seed_forms(raw: Table, origins: _Origins, problems: list[Problem]) -> None:
    """Rewrite the seed's [quotas.container_X] and Boltfile container keys as canonical tables."""
    seed_quotas = raw.pop("quotas", None)
    if seed_quotas is not None and not isinstance(seed_quotas, dict):
        problems.append(Problem("quotas", "must be [quotas.container_NAME] tables"))
    for key, table in (seed_quotas or {}).items():
        written = f"quotas.{key}"
        container = _container_table(raw, key.removeprefix("container_"))
        if not key.startswith("container_") or not isinstance(table, dict) or container is None:
            problems.append(Problem(written, "expected a table [quotas.container_NAME]"))
            continue
        canonical = f"containers.{key.removeprefix('container_')}"
        for name, value in table.items():
            # budget_daily is the seed's spelling of [containers.X.budget] daily.
            target = f"budget.{name[7:]}" if name.startswith("budget_") else f"quotas.{name}"
            _move(container, f"{canonical}.{target}", f"{written}.{name}", value, origins, problems)

    containers = raw.get("containers")
    for name, table in (containers if isinstance(containers, dict) else {}).items():
        if not isinstance(table, dict):
            continue
        canonical = f"containers.{name}"
        if "budget_limit" in table:
            value = table.pop("budget_limit")
            written = f"{canonical}.budget_limit"
            _move(table, f"{canonical}.budget.daily", written, value, origins, problems)
        for key in QuotaConfig.model_fields:
            if key in table:  # the seed's gaming example writes quota keys on the container itself
                value = table.pop(key)
                written = f"{canonical}.{key}"
                _move(table, f"{canonical}.quotas.{key}", written, value, origins, problems)
        for key in _BOLTFILE_CLIENT_KEYS:
            if table.pop(key, None) is not None:
                message = "a Boltfile setting for Bolt itself; Omen ignores it"
                problems.append(Problem(f"{canonical}.{key}", message, "warning"))


def _container_table(raw: Table, name: str) -> Table | None:
    containers = raw.setdefault("containers", {})
    table = containers.setdefault(name, {}) if isinstance(containers, dict) else None
    return table if isinstance(table, dict) else None


def _move(
    container: Table,
    canonical: str,
    written: str,
    value: Any,
    origins: _Origins,
    problems: list[Problem],
) -> None:
    """Put value at canonical (containers.X.SECTION.KEY) unless it is set there already."""
    section, key = canonical.rsplit(".", 2)[-2:]
    target = container.setdefault(section, {})
    if not isinstance(target, dict):
        return  # validation reports the section itself
    if key in target:
        if target[key] != value:
            problems.append(Problem(written, f"ignored: {canonical} is also set", "warning"))
        return
    target[key] = value
    origins.written_at[canonical] = written


def _resolve_env_references(
    raw: Table, env: Mapping[str, str], problems: list[Problem]
) -> tuple[Table, dict[str, str]]:
    """raw with each "env:NAME" string replaced by $NAME, and value -> NAME to hide values by."""
    resolved: dict[str, str] = {}
    drop = object()  # marks a key to leave out, so its default applies

    def resolve(value: Any, path: str) -> Any:
        if isinstance(value, dict):
            here = f"{path}." if path else ""
            table = {key: resolve(item, here + key) for key, item in value.items()}
            return {key: item for key, item in table.items() if item is not drop}
        if isinstance(value, list):
            items = [resolve(item, f"{path}.{index}") for index, item in enumerate(value)]
            return [None if item is drop else item for item in items]
        if not (isinstance(value, str) and value.startswith("env:")):
            return value
        name = value.removeprefix("env:").strip()
        if env.get(name):
            resolved[env[name]] = name
            return env[name]
        if not name:
            problems.append(Problem(path, "env: needs a variable name, e.g. env:OMEN_KEY"))
            return value
        # Unset is a warning, not an error: the example config must pass on a bare machine.
        unset = f"environment variable {name} is not set"
        if path.rsplit(".", 1)[-1] in ("api_key", "key"):
            what = "provider has no API key" if path.startswith("providers.") else "key ignored"
            problems.append(Problem(path, f"{unset}; {what}", "warning"))
            return None
        problems.append(Problem(path, f"{unset}; using the default", "warning"))
        return drop

    return resolve(raw, ""), resolved


class _EnvOverrides(BaseSettings):
    """The OMEN_* variables that override the file (OMEN_SERVER__KEEP_SAMPLES=1d style nests)."""

    model_config = SettingsConfigDict(env_prefix="OMEN_", env_nested_delimiter="__", extra="ignore")

    bind: str | None = None
    database: str | None = None
    redis_url: str | None = None
    instance: str | None = None
    log_level: str | None = None
    log_format: str | None = None
    ollama_endpoints: str | None = None
    ollama_endpoint: str | None = None  # the seed's per-container deployment spells it so
    providers: str | None = None  # the seed's per-container deployment: which ones are enabled
    server: dict[str, Any] = {}
    routing: dict[str, Any] = {}


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' env reader over a given mapping instead of os.environ (for tests)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        super().__init__(_EnvOverrides)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {name.lower(): value for name, value in self._env.items() if value}


def _apply_env_overrides(
    raw: Table, env: Mapping[str, str], origins: _Origins, problems: list[Problem]
) -> None:
    try:
        found = _MappingEnvSource(env)()
    except SettingsError as exc:
        problems.append(Problem("environment", str(exc)))
        return
    overrides: list[tuple[str, tuple[str, ...], Any]] = []  # (variable, path, value)
    for key in ("bind", "database", "redis_url", "instance", "log_level", "log_format"):
        if key in found:
            overrides.append((f"OMEN_{key.upper()}", ("server", key), found[key]))
    for section in ("server", "routing"):
        for path, value in _leaves(found.get(section, {}), (section,)):
            overrides.append(("OMEN_" + "__".join(path).upper(), path, value))
    for key in ("ollama_endpoints", "ollama_endpoint"):
        if found.get(key):
            urls = [url.strip() for url in found[key].split(",") if url.strip()]
            overrides.append((f"OMEN_{key.upper()}", ("providers", "ollama", "endpoints"), urls))
            break
    for variable, path, value in overrides:
        if _set_in(raw, path, value):
            origins.env_var[".".join(path)] = variable
    if found.get("providers") is not None:
        _enable_only(raw, found["providers"], origins, problems)


def _enable_only(raw: Table, names: str, origins: _Origins, problems: list[Problem]) -> None:
    """OMEN_PROVIDERS=ollama,anthropic: exactly these providers are enabled, every other one
    (configured, or the built-in local Ollama) is disabled. A provider type the file does not
    configure is added with its defaults, so an image can run from the environment alone."""
    wanted = list(dict.fromkeys(name.strip() for name in names.split(",") if name.strip()))
    if not wanted:
        problems.append(Problem("providers", "$OMEN_PROVIDERS is set but names no provider"))
        return
    providers = raw.setdefault("providers", {"ollama": {}})  # the default a file may leave out
    if not isinstance(providers, dict):
        return  # validation reports the section itself
    known = sorted({*providers, *PROVIDER_TYPES})
    for name in wanted:
        if name not in known:
            message = f"unknown provider {name!r} in $OMEN_PROVIDERS (known: {', '.join(known)})"
            problems.append(Problem("providers", message))
        elif name not in providers:
            providers[name] = {}
            origins.env_var[f"providers.{name}"] = "OMEN_PROVIDERS"
    for name, table in providers.items():
        if isinstance(table, dict):
            table["enabled"] = name in wanted


def _leaves(values: Any, path: tuple[str, ...]) -> list[tuple[tuple[str, ...], Any]]:
    if not isinstance(values, dict):
        return [(path, values)]
    return [leaf for key, value in values.items() for leaf in _leaves(value, (*path, key))]


def _set_in(raw: Table, path: tuple[str, ...], value: Any) -> bool:
    """Set raw[a][b]... = value, creating tables; False when the file has a non-table in the way."""
    node = raw
    for key in path[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            return False
    node[path[-1]] = value
    return True


def _apply_env_defaults(
    raw: Table, env: Mapping[str, str], secrets: dict[str, str], problems: list[Problem]
) -> None:
    """Provider settings the file leaves out and the environment supplies (seed docker-compose)."""
    providers = raw.get("providers")
    for name, table in (providers if isinstance(providers, dict) else {}).items():
        if not isinstance(table, dict):
            continue
        kind = table.get("type", name)
        if kind == "bedrock" and "region" not in table:
            region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
            if region:
                table["region"] = region
        if kind in ("ollama", "bedrock") or "api_key" in table:
            continue  # bedrock signs with the standard AWS credentials instead
        variable = f"OMEN_{re.sub(r'[^A-Z0-9]', '_', str(name).upper())}_API_KEY"
        if env.get(variable):
            table["api_key"] = env[variable]
            secrets[env[variable]] = variable
        elif "base_url" not in table:  # a custom base_url may be a proxy that needs no key
            message = f"no api_key, and ${variable} is not set; provider has no API key"
            problems.append(Problem(f"providers.{name}.api_key", message, "warning"))


def _validate(raw: Table) -> tuple[OmenConfig | None, list[Problem]]:
    """The config and its field problems; after errors, the config without what failed."""
    try:
        return OmenConfig.model_validate(raw), []
    except ValidationError as exc:
        errors = exc.errors()
    problems = [_problem(error) for error in errors]
    # Validate again without what failed, so the cross-checks still report on the rest: first
    # dropping just the bad keys (their defaults apply), then whole providers and containers.
    for narrow in (True, False):
        try:
            return OmenConfig.model_validate(_prune(raw, errors, narrow)), problems
        except ValidationError:
            continue
    return None, problems


def _prune(raw: Table, errors: list[ErrorDetails], narrow: bool) -> Table:
    pruned = copy.deepcopy(raw)
    for error in errors:
        loc = error["loc"]
        if narrow:
            # A missing key is pruned with its table; a list goes whole, so indexes stay put.
            loc = loc[:-1] if error["type"] == "missing" else loc
            loc = next((loc[:i] for i, part in enumerate(loc) if isinstance(part, int)), loc)
        else:
            loc = loc[:2] if loc[0] in ("providers", "containers") else loc[:1]
        node: Any = pruned
        for part in loc[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and loc:
            node.pop(loc[-1], None)
    return pruned


def _problem(error: ErrorDetails) -> Problem:
    loc = error["loc"]
    path = ".".join(str(part) for part in loc)
    kind, value = error["type"], error.get("input")
    if kind == "extra_forbidden":
        return Problem(path, _unknown_key(str(loc[-1]), _keys_at(loc[:-1])))
    if kind == "missing":
        message = "required"
        if len(loc) == 3 and loc[0] == "providers" and loc[2] == "type":
            message += f" (the table name is not a provider type: {', '.join(PROVIDER_TYPES)})"
        return Problem(path, message)
    if kind == "value_error":
        return Problem(path, error["msg"].removeprefix("Value error, "))
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return Problem(path, f"must be a table (got {_toml_kind(value)})")
    message = re.sub(r"^Input should be", "must be", error["msg"])
    if kind == "literal_error":
        message += f" (got {value!r})"
    elif kind.endswith(("_type", "_parsing")):
        message += f" (got {_toml_kind(value)})"
    return Problem(path, message)


def _toml_kind(value: Any) -> str:
    if value is None:
        return "nothing: its env: variable is unset"
    kinds = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    kinds |= {dict: "a table", list: "a list"}
    return kinds.get(type(value), type(value).__name__)


def _unknown_key(key: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1)
    if close:
        return f"unknown key; did you mean {close[0]!r}?"
    if 0 < len(allowed) <= 8:
        return f"unknown key (expected one of: {', '.join(allowed)})"
    return "unknown key"


def _keys_at(loc: tuple[str | int, ...]) -> list[str]:
    """The keys the model accepts at loc, found by walking OmenConfig's field types."""
    current: Any = OmenConfig
    for part in loc:
        current = _without_none(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field_info = current.model_fields.get(str(part))
            if field_info is None:
                return []
            current = field_info.annotation
        elif get_origin(current) in (dict, list):
            current = get_args(current)[-1]  # a table's value or a list's item
        else:
            return []
    current = _without_none(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [name for name in current.model_fields if name != "name"]
    return []


def _without_none(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        return members[0] if len(members) == 1 else annotation
    return annotation


def _redact(problem: Problem, secrets: dict[str, str]) -> Problem:
    message = problem.message
    for value, variable in secrets.items():
        if len(value) >= 4:
            message = message.replace(value, f"<value of ${variable}>")
    return Problem(problem.path, message, problem.severity)


def _table_names(raw: Table, section: str, validated: Mapping[str, Any]) -> set[str]:
    """Names written in the file, so a table that failed validation still counts as defined."""
    tables = raw.get(section)
    return set(tables) if isinstance(tables, dict) else set(validated)


def _database_path(database: Path | str, config_path: Path | None, from_env: bool) -> Path | str:
    """A relative path is relative to the config file, or to the working directory without one.
    A PostgreSQL URL is kept as it is."""
    if isinstance(database, str):
        return database
    if str(database) == ":memory:":
        return database
    database = database.expanduser()
    if database.is_absolute():
        return database
    base = config_path.absolute().parent if config_path and not from_env else Path.cwd()
    return base / database
