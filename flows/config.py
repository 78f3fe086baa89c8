"""One TOML file, a section per step, validated into pydantic models with a default for everything.

`--set step.key=value` overrides any setting; values are read as TOML (`3`, `true`,
`["a", "b"]`, `"text"`), and a bare word that is not TOML is taken as a string.
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
)

from tokenmill.corpus.store.errors import ConfigError
from tokenmill.corpus.store.runtime import DaskSettings
from tokenmill.corpus.store.settings import Settings
from tokenmill.corpus.store.versions import StoreSettings
from tokenmill.flows.steps import DEFAULT_PIPELINE, STEPS
from tokenmill.train.builtin_tasks import STDLIB_PACKAGES_URL


class PipelineSettings(Settings):
    steps: list[str] = Field(default_factory=lambda: list(DEFAULT_PIPELINE), description="steps run by `tokenmill run`")

    @field_validator("steps")
    @classmethod
    def _known_steps(cls, steps: list[str]) -> list[str]:
        unknown = [s for s in steps if s not in STEPS]
        if unknown:
            raise ValueError(f"unknown step {unknown[0]!r}; known steps: {', '.join(STEPS)}")
        return steps


Config = create_model(
    "Config",
    __config__=ConfigDict(extra="forbid"),
    store=(StoreSettings, Field(default_factory=StoreSettings)),
    dask=(DaskSettings, Field(default_factory=DaskSettings)),
    pipeline=(PipelineSettings, Field(default_factory=PipelineSettings)),
    **{name: (spec.params, Field(default_factory=spec.params)) for name, spec in STEPS.items()},
)


# The embedded settings of a run with no config file: the demo on the installed Python's own
# documentation. After filtering that is a few MB of text, too little for the 32k vocabulary
# that suits a real corpus, and the tiny CPU model trains 3x faster on 8k. Its downstream task
# is built from the same Python (which standard-library package a docstring comes from). A
# config file replaces this layer, so real corpora get the library defaults.
DEMO_SETTINGS: dict[str, Any] = {"tokenizer": {"vocab_size": 8192}, "eval": {"tasks": [{"path": STDLIB_PACKAGES_URL}]}}


def parse_value(raw: str) -> Any:
    """A `--set` value as TOML, or the raw text when it is not valid TOML."""
    try:
        return tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        return raw


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """`K=V` strings as {dotted key: value}."""
    pairs: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. load.paths='[\"data/*.jsonl\"]'")
        pairs[key.strip()] = parse_value(raw.strip())
    return pairs


def apply_overrides(data: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Set dotted keys (`filter.gopher_quality.min_words`) in the raw config data."""
    for key, value in overrides.items():
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: '{part}' is a value, not a section")
            node = child
        node[leaf] = value
    return data


def describe_error(error: ValidationError) -> str:
    """Every problem on one line: the dotted key, what was expected, what was given."""
    problems = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "config"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown setting"
        given = item.get("input")
        shown = "" if item["type"] in ("extra_forbidden", "missing") or isinstance(given, dict) else f" (got {given!r})"
        problems.append(f"{key}: {message}{shown}")
    return "; ".join(problems)


def load_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> Any:
    """The validated config: the file (else the demo's embedded settings), then overrides, then
    defaults for the rest."""
    data: dict[str, Any] = copy.deepcopy(DEMO_SETTINGS)
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    apply_overrides(data, overrides or {})
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"config error: {describe_error(exc)}") from None


def _toml_value(value: Any) -> str:
    """A value as TOML: JSON's form for strings and numbers, arrays item by item, tables inline (`{k = v}`,
    which JSON's `{"k": v}` is not); a None inside a table is left out, as TOML has no null."""
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        pairs = (f"{json.dumps(key)} = {_toml_value(item)}" for key, item in value.items() if item is not None)
        return "{" + ", ".join(pairs) + "}"
    return json.dumps(value, ensure_ascii=False)


def _render_section(path: str, model: type[BaseModel], values: dict[str, Any], lines: list[str]) -> None:
    """One `[path]` table: plain settings first, then each nested model as its own sub-table."""
    nested = []
    lines.append(f"[{path}]")
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            nested.append((name, field, annotation))
            continue
        if field.description:
            lines.append(f"# {field.description}")
        value = values[name]
        lines.append(f"# {name} =  (unset)" if value is None else f"{name} = {_toml_value(value)}")
    if hasattr(model, "settings_notes"):
        lines += [f"# {line}" for line in model(**values).settings_notes()]
    lines.append("")
    for name, field, annotation in nested:
        if field.description:
            lines.append(f"# {field.description}")
        _render_section(f"{path}.{name}", annotation, values[name], lines)


def settings_toml(sections: list[str]) -> str:
    """The settings of a run with no config file, as valid TOML, each under its description."""
    defaults = load_config().model_dump(mode="json")
    lines: list[str] = []
    for section in sections:
        _render_section(section, Config.model_fields[section].annotation, defaults[section], lines)
    return "\n".join(lines)
