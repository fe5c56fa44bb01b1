"""``opensms subscription create | get | delete``: the account's delivery-info subscription."""

from __future__ import annotations

import argparse

from ._base import ENV_SECURITY_TOKEN, Commands, make_client, security_token
from ._output import Output

__all__ = ["register"]


def register(commands: Commands) -> None:
    """Add the ``subscription`` group."""
    actions = commands.group("subscription", help="the delivery-info subscription")
    create = actions.add(
        "create",
        run=_create,
        help="subscribe an https URL",
        description="Subscribe an https:// URL to delivery infos (one per account: a new one "
        "replaces the old). BICS puts the token in every callback; give the receiver the same.",
    )
    create.add_argument("url", help="the receiver's public https:// URL")
    create.add_argument("--token", help=f"security token (default: env {ENV_SECURITY_TOKEN})")
    actions.add("get", run=_get, help="show the subscription")
    actions.add("delete", run=_delete, help="delete it")


async def _create(args: argparse.Namespace, out: Output) -> int:
    token = security_token(args.token, ENV_SECURITY_TOKEN)
    async with make_client(args) as client:
        subscription = await client.create_subscription(args.url, token)
    out.result({"url": subscription.url}, [f"subscribed {subscription.url}"])
    return 0


async def _get(args: argparse.Namespace, out: Output) -> int:
    async with make_client(args) as client:
        subscription = await client.get_subscription()
    if subscription is None:
        data: dict[str, object] = {"subscribed": False, "url": None, "final_delivery": None}
        out.result(data, ["no subscription"])
        return 0
    data = {
        "subscribed": True,
        "url": subscription.url,
        "final_delivery": subscription.final_delivery,
    }
    out.result(data, [subscription.url])
    return 0


async def _delete(args: argparse.Namespace, out: Output) -> int:
    async with make_client(args) as client:
        await client.delete_subscription()
    out.result({"deleted": True}, ["subscription deleted"])
    return 0
