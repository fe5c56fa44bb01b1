"""``opensms convert --address NUMBER | --reference REF``: report a conversion to BICS."""

from __future__ import annotations

import argparse

from ._base import Commands, make_client, non_empty
from ._output import Output

__all__ = ["register"]


def register(commands: Commands) -> None:
    """Add ``convert``."""
    convert = commands.add(
        "convert",
        run=_convert,
        help="report a conversion (a recipient acted on a message)",
        description="Report to BICS that a recipient converted (POST /conversions): give "
        "exactly one of --address (an E.164 number; sent as BICS's example writes it, digits "
        "without tel: or +) and --reference (your customer reference, sent as given).",
    )
    which = convert.add_mutually_exclusive_group(required=True)
    which.add_argument("--address", metavar="NUMBER", type=non_empty, help="+33612345678")
    which.add_argument("--reference", metavar="REF", type=non_empty, help="the customer reference")


async def _convert(args: argparse.Namespace, out: Output) -> int:
    async with make_client(args) as client:
        await client.report_conversion(address=args.address, customer_reference=args.reference)
    data = {"reported": True, "address": args.address, "customer_reference": args.reference}
    what = f"address {args.address}" if args.address else f"reference {args.reference}"
    out.result(data, [f"conversion reported for {what}"])
    return 0
