"""A stand-in MTA's SMTP session (aiosmtpd, a test and bench dependency): the answers to
commands that came together are written together, as Postfix and Exim do for a client
that pipelines (RFC 2920), instead of aiosmtpd's one write per answer."""

from __future__ import annotations

from typing import Any, AnyStr

from aiosmtpd.smtp import SMTP


class TogetherSMTP(SMTP):
    """aiosmtpd's server, holding each answer while another command is already read."""

    answers_together = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._held: list[bytes] = []

    async def push(self, status: AnyStr) -> None:
        if not self.answers_together:
            await super().push(status)
            return
        answer = (status.encode("utf-8" if self.enable_SMTPUTF8 else "ascii")
                  if isinstance(status, str) else status)
        self._held.append(answer + b"\r\n")
        # Another command is already here (StreamReader has no public look at its buffer).
        if b"\n" in self._reader._buffer:  # type: ignore[attr-defined]
            return
        self._writer.write(b"".join(self._held))
        self._held.clear()
        await self._writer.drain()
