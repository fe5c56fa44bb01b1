"""Send a message and poll its delivery infos.

Runs against the bundled simulator, so it needs no account. Against BICS, drop `run_simulator`
and set OPENSMS_API_KEY (and OPENSMS_BASE_URL for v2/v3) instead.

    .venv/bin/python examples/quickstart.py
"""

from __future__ import annotations

import asyncio

from opensms_async import OpenSMSClient
from opensms_async.testing import run_simulator


async def main() -> None:
    """Send to two numbers, then poll until both are final."""
    async with (
        run_simulator(seed=1) as sim,
        OpenSMSClient(api_key=sim.api_key, base_url=sim.base_url) as client,
    ):
        sent = await client.send_message("tel:+32123456", ["+33612345678", "+33612345699"], "Hi")
        print(f"request {sent.request_id}: {sent.parts} part(s)")
        while True:
            infos = await client.get_delivery_infos("tel:+32123456", sent.request_id)
            if all(info.is_final for info in infos.delivery_infos):
                break
            await asyncio.sleep(0.1)
        for info in infos.delivery_infos:
            print(f"  {info.address}: {info.status}")


if __name__ == "__main__":
    asyncio.run(main())
