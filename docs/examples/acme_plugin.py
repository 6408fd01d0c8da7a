"""pbxsms plugin for "Acme SMS", a made-up second provider: send through its REST API,
take its inbound and receipt webhooks, check its credentials in `pbxsms doctor`.

Acme's API: `POST {ACME_API_URL}/messages` with `{"from", "to", "text", "reference"}` and
`Authorization: Bearer <key>` answers 200 `{"id": ...}`; `GET /account` checks the key.
Acme posts inbound SMS as JSON `{"id", "from", "to", "text"}` to our webhook, and
delivery receipts as `{"id", "reference", "status", "error"}` (`reference` echoes ours).
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import ClientConnectorError, ClientError, ClientSession, ClientTimeout, web
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from pbxsms.core.plugin_api import (
    Check,
    Config,
    Finding,
    InboundMessage,
    InvalidNumber,
    OutboundMessage,
    Outcome,
    PluginSettings,
    Problem,
    ProviderRegister,
    PublishError,
    Receipt,
    Refusal,
    RouteRegister,
    Runtime,
    SendResult,
    State,
    accept_inbound,
    accept_receipt,
    fail,
    hookimpl,
    metrics,
    ok,
    same_secret,
    to_e164,
)

NAME = "acme"


class AcmeSettings(PluginSettings):
    """`ACME_*` in the environment or `.env`; the `[acme]` TOML table for the rest."""

    model_config = SettingsConfigDict(env_prefix="ACME_", extra="ignore",
                                      case_sensitive=False)

    api_url: str = "https://api.acme-sms.example/v1"
    api_key: SecretStr | None = None
    webhook_token: SecretStr | None = None


def settings(config: Config) -> AcmeSettings:
    """Read per call: a reload replaces the whole Config."""
    return config.plugin(NAME, AcmeSettings)


@hookimpl
def settings_model() -> type[PluginSettings]:
    return AcmeSettings


@hookimpl
def config_warnings(config: Config) -> list[Problem]:
    problems = []
    if settings(config).api_key is None:
        problems.append(Problem("ACME_API_KEY", "unset: nothing can be sent through Acme"))
    if settings(config).webhook_token is None:
        problems.append(Problem("ACME_WEBHOOK_TOKEN", "unset: the Acme webhook refuses all"))
    return problems


# -- sending: the dispatcher batches, retries and records statuses; we only call Acme --


class AcmeProvider:
    name = NAME
    max_batch = 1  # Acme takes one message per call
    flush_delay = 0.0
    retry_ambiguous = True  # a lost answer is sent again (at least once)

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def send_batch(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        return [await self.send(message) for message in messages]

    async def send(self, message: OutboundMessage) -> SendResult:
        config = settings(self.runtime.config)
        if config.api_key is None:
            return SendResult(Outcome.FAILED, code="NOT_CONFIGURED", reason="set ACME_API_KEY")
        body = {"from": message.from_, "to": message.to, "text": message.body,
                "reference": message.id}
        headers = {"Authorization": f"Bearer {config.api_key.get_secret_value()}"}
        try:
            async with self.runtime.http.post(f"{config.api_url}/messages", json=body,
                                              headers=headers,
                                              timeout=ClientTimeout(total=15)) as response:
                status = response.status
                answer = await response.json(content_type=None) if status == 200 else {}
        except ClientConnectorError as error:  # never reached Acme: safe to send again
            return SendResult(Outcome.RETRY, code="NOT_SENT", reason=str(error))
        except (ClientError, TimeoutError, ValueError) as error:  # may have been sent
            return SendResult(Outcome.AMBIGUOUS, reason=f"no usable answer: {error!r}")
        if status == 200 and isinstance(answer, dict) and answer.get("id"):
            return SendResult(Outcome.ACCEPTED, provider_message_id=str(answer["id"]))
        if status in (429, 503):
            return SendResult(Outcome.RETRY, code=str(status), reason="Acme asks to retry")
        if status == 401:
            return SendResult(Outcome.FAILED, code="UNAUTHORIZED",
                              reason="Acme refused ACME_API_KEY")
        return SendResult(Outcome.FAILED, code=str(status), reason=f"Acme answered {status}")


@hookimpl
def register_providers(runtime: Runtime, register: ProviderRegister) -> None:
    register(AcmeProvider(runtime))


# -- receiving: parse Acme's webhooks; the core routes, stores and counts them --

# Acme's receipt states in ours. A state not listed is refused (422), never guessed.
STATES = {"queued": State.ACCEPTED, "sent": State.SENT, "delivered": State.DELIVERED,
          "failed": State.FAILED, "expired": State.FAILED}


def counted(kind: str, result: str, refusal: Refusal) -> Refusal:
    """Count a refused webhook (`pbxsms_webhooks_total`), then raise what it returns."""
    metrics.WEBHOOKS.labels(NAME, kind, result).inc()
    return refusal


@hookimpl
def register_routes(runtime: Runtime, register: RouteRegister) -> None:
    def authenticate(request: web.Request, kind: str) -> None:
        config = settings(runtime.config)
        token = config.webhook_token.get_secret_value() if config.webhook_token else ""
        if not token or not same_secret(request.query.get("token"), token):
            raise counted(kind, "refused", Refusal(401, "missing or wrong token", "token"))

    async def inbound(request: web.Request) -> web.Response:
        authenticate(request, "inbound")
        try:
            data = await request.json()
            region = runtime.config.core.default_region
            message = InboundMessage(
                provider=NAME, provider_message_id=str(data["id"]),
                **{"from": to_e164(str(data["from"]), region)},
                to=to_e164(str(data["to"]), region), body=str(data["text"]))
        except (ValueError, KeyError, TypeError, InvalidNumber) as error:
            raise counted("inbound", "invalid",
                          Refusal(422, f"not an Acme inbound message: {error}")) from None
        try:
            # Once per Acme id: a repeated webhook is the same event, never a second one.
            accepted = await accept_inbound(runtime, message, f"{NAME}:{data['id']}")
        except PublishError:
            raise Refusal(503, "not stored; retry") from None  # Acme retries
        return web.json_response({"id": accepted.id, "duplicate": accepted.duplicate})

    async def receipt(request: web.Request) -> web.Response:
        authenticate(request, "receipt")
        try:
            data = await request.json()
            status = str(data["status"])
            error = str(data["error"]) if data.get("error") else None
            reference = str(data["reference"]) if data.get("reference") else None
            report = Receipt(provider=NAME, provider_message_id=str(data["id"]),
                             state=STATES[status], id_hint=reference,  # our id, if echoed
                             error_code=error, reason=f"Acme: {status}" if error else None)
        except (ValueError, KeyError, TypeError) as error:
            raise counted("receipt", "invalid",
                          Refusal(422, f"not an Acme receipt: {error!r}")) from None
        try:
            # Once per Acme id and status; a final state is never undone by a later one.
            accepted = await accept_receipt(runtime, report, f"{NAME}:{data['id']}:{status}")
        except PublishError:
            raise Refusal(503, "not stored; retry") from None
        if accepted is None:  # no message of ours: counted `unmatched`, nothing to retry
            return web.json_response({"result": "unmatched"})
        return web.json_response({"id": accepted.id, "duplicate": accepted.duplicate})

    register("POST", "/webhook/acme", inbound)
    register("POST", "/webhook/acme/receipt", receipt)


# -- `pbxsms doctor`: are the credentials accepted? (sends nothing) --


@hookimpl
def doctor_checks(config: Config) -> list[Check]:
    async def credentials() -> Finding:
        acme = settings(config)
        if acme.api_key is None:
            return fail("ACME_API_KEY unset", "set ACME_API_KEY in .env")
        headers = {"Authorization": f"Bearer {acme.api_key.get_secret_value()}"}
        try:
            async with ClientSession(timeout=ClientTimeout(total=10)) as http, http.get(
                    f"{acme.api_url}/account", headers=headers) as response:
                status = response.status
        except ClientError as error:
            return fail(f"cannot reach {acme.api_url}: {error}", "check ACME_API_URL")
        if status != 200:
            return fail(f"Acme answered {status}", "check ACME_API_KEY")
        return ok(f"credentials accepted by {acme.api_url}")

    return [Check(NAME, credentials)]
