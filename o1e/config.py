"""Typed stage configs: pydantic models loaded from YAML, every field overridable from the command line.

A config is built in three layers, each overriding the one before: the model's defaults, a YAML file
(``--config FILE``, local or s3://), then ``dotted.key=value`` overrides (values parsed as YAML, so
``shards=2``, ``retriever.normalize=false`` and ``tags=[a,b]`` mean what they say). Unknown keys and
wrong types are rejected before any work starts, with the offending key named.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Iterable, TypeVar, Union

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError

from o1e import storage
from o1e.provenance import fingerprint

C = TypeVar("C", bound="StageConfig")


class ConfigError(ValueError):
    """A config that cannot run; raised before any work starts."""


FINGERPRINT_RULE = 1
"""What a config fingerprint covers (``Section.fingerprint_data``). A deliberate change of rule bumps it: from
rule 2 on the rule's number is part of every fingerprint, so the change supersedes every output visibly, and
run records carry it. Rule 1 hashes the data alone, as fingerprints did before rules were numbered."""

_NEUTRAL = "o1e_neutral"


def added(default: Any, *, since: str, neutral: Any = ..., **field: Any) -> Any:
    """A config field added after outputs could already exist (a ``pydantic.Field`` with ``default``).

    At ``neutral``, the value that computes what configs from before the field computed (by default the
    value it was added with), the field is left out of fingerprints: an upgrade that adds it leaves existing
    outputs current. Any other value, a later change of its default included, is fingerprinted and
    supersedes them. ``since``: the release that added it. Mark a field in the change that adds it: marking
    one that outputs already record would change their fingerprints.
    """
    extra = {_NEUTRAL: default if neutral is ... else neutral, "o1e_since": since}
    return Field(default, json_schema_extra=extra, **field)


def fingerprint_value(value: Any) -> Any:
    if isinstance(value, Section):
        return value.fingerprint_data()
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (list, tuple)):
        return [fingerprint_value(v) for v in value]
    if isinstance(value, dict):
        return {k: fingerprint_value(v) for k, v in value.items()}
    return value


class Section(BaseModel):
    """A nested config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    not_fingerprinted: ClassVar[tuple[str, ...]] = ()
    """Fields that say where or how the work runs, not what it computes: left out of fingerprints."""

    def fingerprint_data(self, exclude: Iterable[str] = ()) -> dict[str, Any]:
        """What the fingerprint covers: every field, nested sections alike, but those in
        ``not_fingerprinted`` or ``exclude`` and those ``added`` later that sit at their neutral value."""
        skip = {*self.not_fingerprinted, *exclude}
        data = {}
        for name, info in type(self).model_fields.items():
            value = getattr(self, name)
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            if name in skip or (_NEUTRAL in extra and value == extra[_NEUTRAL]):
                continue
            data[name] = fingerprint_value(value)
        return data


class StageConfig(Section):
    """Base of every stage's config."""

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
        return config_fingerprint(self.fingerprint_data())

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def config_fingerprint(data: dict[str, Any]) -> str:
    """The fingerprint of ``fingerprint_data`` under the current ``FINGERPRINT_RULE``."""
    return fingerprint(data if FINGERPRINT_RULE == 1 else {"fingerprint_rule": FINGERPRINT_RULE, **data})


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
