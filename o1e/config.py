"""Typed stage configs: pydantic models loaded from YAML, every field overridable from the command line.

A config is built in three layers, each overriding the one before: the model's defaults, a YAML file
(``--config FILE``, local or s3://), then ``dotted.key=value`` overrides (values parsed as YAML, so
``shards=2``, ``retriever.normalize=false`` and ``tags=[a,b]`` mean what they say). Unknown keys and
wrong types are rejected before any work starts, with the offending key named.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, TypeVar, Union

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Tag, ValidationError

from o1e import storage
from o1e.provenance import fingerprint

C = TypeVar("C", bound="StageConfig")


class ConfigError(ValueError):
    """A config that cannot run; raised before any work starts."""


class Section(BaseModel):
    """A nested config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class StageConfig(Section):
    """Base of every stage's config."""

    # Fields that say where results go or how loudly, not what is computed: left out of the fingerprint.
    not_fingerprinted: ClassVar[tuple[str, ...]] = ("output", "ray", "progress", "overwrite")

    overwrite: bool = False
    """Replace output that another config made. Without it a stage refuses to write over or mix into
    such output (``o1e.storage.check_rerun``); a rerun of the same config resumes or replaces its own."""

    def output_urls(self) -> list[str]:
        """Every place this stage writes to (``check_outputs`` checks them before any work)."""
        return [self.output] if getattr(self, "output", None) else []

    def check_outputs(self) -> None:
        """Fail before the work when an output cannot be written (``o1e.storage.check_output``)."""
        for url in self.output_urls():
            try:
                storage.resolve(url)
            except storage.StorageError as err:
                raise ConfigError(f"output: {err}") from None
            storage.check_output(url)

    def fingerprint(self) -> str:
        data = self.model_dump(mode="json")
        for name in self.not_fingerprinted:
            data.pop(name, None)
        return fingerprint(data)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def kind_union(default: str, **variants: type[Section]) -> Any:
    """A config field holding one of several sections told apart by their ``kind`` (``default`` when a
    mapping leaves it out), so that ``retriever.batch_size=8`` alone still names a known variant."""

    def kind_of(value: Any) -> str:
        return value.get("kind", default) if isinstance(value, dict) else value.kind

    tagged = tuple(Annotated[cls, Tag(kind)] for kind, cls in variants.items())
    return Annotated[Union[tagged], Discriminator(kind_of)]


def parse_override(text: str) -> tuple[list[str], Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} is not of the form dotted.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r}: value is not valid YAML: {err}") from err
    return key.strip().split("."), value


def set_dotted(data: dict[str, Any], path: list[str], value: Any) -> None:
    node = data
    for i, part in enumerate(path[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise ConfigError(f"override {'.'.join(path)}: {'.'.join(path[: i + 1])} is not a section")
        node = child
    node[path[-1]] = value


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"invalid config ({source}):"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<root>"
        if e["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key")
        elif isinstance(e.get("input"), (dict, list)) or e["type"] == "missing":
            lines.append(f"  {key}: {e['msg']}")
        else:
            lines.append(f"  {key}: {e['msg']} (got {e['input']!r})")
    return "\n".join(lines)


def load_config(cls: type[C], path: str | None = None, overrides: list[str] | None = None,
                base: dict[str, Any] | None = None) -> C:
    """Defaults <- ``base`` <- YAML file at ``path`` <- ``overrides`` (``dotted.key=value``)."""
    data: dict[str, Any] = dict(base or {})
    source = "defaults"
    if path:
        try:
            loaded = yaml.safe_load(storage.read_text(path))
        except storage.StorageError as err:
            raise ConfigError(f"cannot read config file: {err}") from err
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {path} is not valid YAML: {err}") from err
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping at the top, not {type(loaded).__name__}")
        data.update(loaded or {})
        source = path
    for text in overrides or []:
        keys, value = parse_override(text)
        set_dotted(data, keys, value)
    if overrides:
        source += " + command line"
    try:
        return cls.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, source)) from None
