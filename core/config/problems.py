"""Configuration problems, named by the setting an operator must change."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import AliasChoices, BaseModel, ValidationError


@dataclass(frozen=True)
class Problem:
    """One thing wrong or missing in the configuration."""

    setting: str
    message: str

    def __str__(self) -> str:
        return f"{self.setting}: {self.message}"


class ConfigError(Exception):
    """The configuration cannot be used; `problems` says why, setting by setting."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


def env_name(model: type[BaseModel], field: str) -> str:
    """The environment variable an operator sets for `field` of a settings model."""
    info = model.model_fields.get(field)
    if info is not None and isinstance(info.validation_alias, str):
        return info.validation_alias
    if info is not None and isinstance(info.validation_alias, AliasChoices):
        first = info.validation_alias.choices[0]
        if isinstance(first, str):
            return first
    prefix = str(model.model_config.get("env_prefix", ""))
    return f"{prefix}{field}".upper()


def problems_from_validation(
    error: ValidationError, model: type[BaseModel], where: str | None = None
) -> list[Problem]:
    """Translate pydantic's errors into problems named by setting (env var or TOML key)."""
    problems = []
    for item in error.errors(include_input=False, include_url=False):
        loc = [str(part) for part in item["loc"]]
        if where is not None:
            setting = ".".join([where, *loc]) if loc else where
        elif loc:
            setting = env_name(model, loc[0])
        else:
            setting = model.__name__
        problems.append(Problem(setting, item["msg"]))
    return problems
