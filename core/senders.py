"""Which of our numbers an outbound SMS goes from, and through which provider.

This is the one seam between sending and the message settings of our numbers, used by the
send API and the dispatcher. For now it reads the `[[numbers]]` records of the TOML file;
the numbers store replaces it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pbxsms.core.phone import InvalidNumber, to_e164

if TYPE_CHECKING:
    from pbxsms.core.events import OutboundRequest
    from pbxsms.core.runtime import Runtime
    from pbxsms.core.settings import Config


class Unroutable(Exception):
    """No usable number or provider for this request; `field` names the culprit."""

    def __init__(self, reason: str, field: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


async def resolve_sender(runtime: Runtime, request: OutboundRequest) -> tuple[str, str]:
    """(our number to send from, provider name) for `request`, or Unroutable.

    Asynchronous so that a store may look things up (e.g. the number a customer last
    texted the extension on).

    `from` must be one of our enabled numbers; without it, the first enabled number of
    `extension` is used. `request.provider` overrides the number's provider.
    """
    records = _records(runtime.config)
    if request.from_:
        found = [(n, r) for n, r in records if n == request.from_]
        if not found:
            raise Unroutable(f"{request.from_} is not one of our numbers", "from")
        number, record = found[0]
        if record.get("enabled", True) is False:
            raise Unroutable(f"{number} is disabled in its message settings", "from")
    elif request.extension:
        mine = [(n, r) for n, r in records if str(r.get("extension", "")) == request.extension
                and r.get("enabled", True) is not False]
        if not mine:
            raise Unroutable(f"extension {request.extension} has no enabled number",
                             "extension")
        number, record = mine[0]
    else:
        raise Unroutable("give `from` (our number) or `extension`", "from")
    provider = request.provider or record.get("provider")
    if not isinstance(provider, str) or not provider:
        raise Unroutable(f"{number} has no provider in its message settings", "from")
    if provider not in runtime.providers:
        raise Unroutable(f"provider {provider!r} of {number} is not enabled", "provider")
    return number, provider


_cache: tuple[object, list[tuple[str, dict[str, Any]]]] | None = None


def _records(config: Config) -> list[tuple[str, dict[str, Any]]]:
    """The records with their numbers in E.164, parsed once per configuration."""
    global _cache
    if _cache is None or _cache[0] is not config:
        region = config.core.default_region
        _cache = (config, [(number, record) for record in config.file.numbers
                           if (number := _number(record, region)) is not None])
    return _cache[1]


def _number(record: dict[str, Any], region: str) -> str | None:
    try:
        return to_e164(record.get("number"), region)
    except InvalidNumber:
        return None
