"""Which of our numbers an outbound SMS goes from, and through which provider.

The one seam between sending and the message settings of our numbers (`runtime.numbers`),
used when a send request is taken (`queue_outbound`) and by the dispatcher.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nats.errors import Error as NatsError

from pbxsms.bus.publish import BusError, PublishError
from pbxsms.core.refusal import Refusal
from pbxsms.core.stores.numbers import NoSender

if TYPE_CHECKING:
    from pbxsms.core.model.events import OutboundRequest
    from pbxsms.core.serve.runtime import Runtime


class UnroutableRequest(Refusal):
    """A 422: no usable number or provider for this send request; `field` names the culprit.

    The dispatcher marks such a request `unroutable`.
    """

    def __init__(self, message: str, field: str) -> None:
        super().__init__(422, message, field)


async def resolve_sender(runtime: Runtime, request: OutboundRequest,
                         domain: str | None = None) -> tuple[str, str]:
    """(our number to send from, provider name) for `request`, or UnroutableRequest.

    `from` must be one of our enabled numbers. Without it, the extension's conversation
    number with this customer (the number they last texted), else its first enabled
    number; `domain` is the extension's tenant when the caller knows it. `request.provider`
    overrides the number's provider. PublishError when the conversation cannot be read
    now (the bus is down): the caller answers 503 or retries.
    """
    numbers = runtime.numbers
    try:
        if request.from_:
            record = numbers.sending_number(request.from_)
        elif request.extension:
            record = await numbers.sender_for(request.extension, domain, request.to)
        else:
            raise UnroutableRequest("give `from` (our number) or `extension`", "from")
    except NoSender as error:
        raise UnroutableRequest(str(error), "from" if request.from_ else "extension") from None
    except (BusError, NatsError, TimeoutError, OSError) as error:
        raise PublishError(f"conversation not readable: {type(error).__name__}: "
                           f"{error}") from error
    provider = request.provider or record.provider
    if provider not in runtime.providers:
        raise UnroutableRequest(f"provider {provider!r} of {record.number} is not enabled",
                                "provider")
    return record.number, provider
