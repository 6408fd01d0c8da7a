"""Message settings of one number: the record, its validation and the rows of a file."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError
from pydantic_core.core_schema import ValidationInfo

from pbxsms.core.model.events import Route
from pbxsms.core.model.phone import InvalidNumber, our_number, to_e164
from pbxsms.core.refusal import Refusal

_EXTENSION = re.compile(r"^[A-Za-z0-9_.*#+-]{1,64}$")
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_EMAIL_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}$")
_PROVIDER = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _fail(message: str) -> PydanticCustomError:
    # A custom error keeps pydantic's "Value error, " prefix out of what operators read.
    return PydanticCustomError("invalid", message)


def hostname(text: str) -> str | None:
    """`text` as a lower-case host name, or None when it is not one."""
    try:
        host = text.strip().lower().encode("idna").decode("ascii")
    except UnicodeError:
        return None
    labels = host.split(".")
    if len(host) > 253 or not all(_LABEL.match(label) for label in labels):
        return None
    return host


def email_address(text: str) -> str:
    """A single address, domain lower-cased; ValueError naming what is wrong."""
    local, at, domain = text.strip().rpartition("@")
    if not at or not local or not domain:
        raise ValueError(f"{text!r} is not an email address")
    host = hostname(domain)
    if (not _EMAIL_LOCAL.match(local) or local.startswith(".") or local.endswith(".")
            or ".." in local):
        raise ValueError(f"{text!r} is not an email address (the part before @)")
    if host is None or "." not in host or host.rsplit(".", 1)[1].isdigit():
        raise ValueError(f"{text!r} is not an email address (the domain)")
    return f"{local}@{host}"


class NumberSettings(BaseModel):
    """The message settings of one of our numbers (FS PBX "Message Settings")."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    number: str = Field(description="Our number, E.164 (any common format is accepted)")
    provider: str = Field(description="The enabled provider plugin that owns the number")
    extension: str | None = Field(None, description="Extension whose mobile app gets it")
    domain: str | None = Field(None, description="Tenant (PBX domain)")
    email: list[str] = Field(default_factory=list, description="Read-only copies")
    enabled: bool = True
    description: str = Field("", max_length=256)
    mobileapp_org: str | None = Field(None, max_length=128,
                                      description="The mobile app's organisation id")
    sip: bool = Field(False, description="Also deliver to the extension's SIP phones "
                                         "(freeswitch plugin)")
    managed_by_file: str | None = Field(
        None, description="The TOML file whose [[numbers]] row owns these settings (set by "
                          "the gateway); the API and the CLI cannot change them")

    @classmethod
    def parse(cls, data: Mapping[str, Any], region: str = "US") -> NumberSettings:
        """Validate input (API body, TOML table, CSV row); numbers without `+` use `region`.

        The number must be valid (not only possible): see `our_number`."""
        return cls.model_validate(dict(data), context={"region": region, "input": True})

    @field_validator("number", mode="before")
    @classmethod
    def _number(cls, value: object, info: ValidationInfo) -> str:
        context = info.context or {}
        region = context.get("region", "US")
        # Records read back from the bucket were validated when written: a stricter
        # phonenumbers release must not make them vanish.
        normalise = our_number if context.get("input") else to_e164
        try:
            return normalise(value, region)
        except InvalidNumber as error:
            raise _fail(str(error)) from None

    @field_validator("provider", mode="before")
    @classmethod
    def _provider(cls, value: object) -> object:
        if isinstance(value, str) and not _PROVIDER.match(value.strip()):
            raise _fail("expected a provider plugin's name, e.g. clicksend")
        return value

    @field_validator("extension", mode="before")
    @classmethod
    def _extension(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str):
            value = value.strip() or None
            if value is not None and not _EXTENSION.match(value):
                raise _fail("expected an extension: letters, digits and _.*#+- only")
        return value

    @field_validator("domain", mode="before")
    @classmethod
    def _domain(cls, value: object) -> object:
        if isinstance(value, str):
            if not value.strip():
                return None
            host = hostname(value)
            if host is None:
                raise _fail("expected a domain name, e.g. pbx.example.com")
            return host
        return value

    @field_validator("email", mode="before")
    @classmethod
    def _email(cls, value: object) -> list[str]:
        if value is None:
            return []
        if isinstance(value, str):
            value = [part for part in re.split(r"[,;\s]+", value) if part]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise _fail("expected an email address or a list of them")
        try:
            return list(dict.fromkeys(email_address(v) for v in value))
        except ValueError as error:
            raise _fail(str(error)) from None

    @field_validator("mobileapp_org", mode="before")
    @classmethod
    def _org(cls, value: object) -> object:
        return (value.strip() or None) if isinstance(value, str) else value

    def route(self) -> Route:
        return Route(number=self.number, provider=self.provider, extension=self.extension,
                     domain=self.domain, email=list(self.email),
                     mobileapp_org=self.mobileapp_org)

    def key(self) -> str:
        return number_key(self.number)


def number_key(e164: str) -> str:
    """The KV key of a number: its digits (`+` is not allowed in keys)."""
    return e164.lstrip("+")


class NumberError(Refusal):
    """Invalid message settings; `field` names the offending one (e.g. `numbers[2].email`).

    A 422 when it reaches the API; the config loader reports its field and message as a
    Problem.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(422, message, field)
        self.field: str = field

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def first_error(error: ValidationError, prefix: str = "") -> NumberError:
    """The first problem of a validation error, named by its field."""
    item = error.errors(include_url=False)[0]
    field = ".".join(str(part) for part in item["loc"] if not isinstance(part, int))
    message = item["msg"]
    if item["type"] == "extra_forbidden":
        message = "unknown field"
    elif item["type"] == "missing":
        message = "required"
    return NumberError(f"{prefix}{field or 'record'}", message)


def parse_rows(rows: Iterable[Mapping[str, Any]], region: str, providers: Collection[str],
               where: str = "numbers", known: str = "enabled providers") -> list[NumberSettings]:
    """Validate every row or none: NumberError names `<where>[i].<field>` of the first bad one.

    A number given twice is an error too, whatever its formatting.
    """
    records: list[NumberSettings] = []
    seen: dict[str, int] = {}
    for index, row in enumerate(rows):
        prefix = f"{where}[{index}]."
        if not isinstance(row, Mapping):
            raise NumberError(f"{where}[{index}]", "expected a table of settings")
        try:
            record = NumberSettings.parse(row, region)
        except ValidationError as error:
            raise first_error(error, prefix) from None
        check_provider(record, providers, prefix, known)
        if record.number in seen:
            raise NumberError(f"{prefix}number",
                              f"{record.number} is also {where}[{seen[record.number]}]")
        seen[record.number] = index
        records.append(record)
    return records


def check_provider(record: NumberSettings, providers: Collection[str], prefix: str = "",
                   known: str = "enabled providers") -> None:
    if record.provider not in providers:
        names = ", ".join(sorted(providers)) or "none"
        raise NumberError(f"{prefix}provider", f"{record.provider!r} is not an enabled "
                                               f"provider plugin ({known}: {names})")
