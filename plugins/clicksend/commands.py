"""`pbxsms clicksend ...`: the operator's ClickSend helpers."""

from __future__ import annotations

import click


@click.group("clicksend")
def clicksend() -> None:
    """ClickSend helpers: webhook URLs, subaccounts, numbers, a local simulator."""
