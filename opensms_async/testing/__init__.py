"""Testing support: a simulator of the OpenSMS API that sends real callbacks, and pytest fixtures.

The simulator serves BICS v3's eleven endpoints (plus an OAuth token endpoint) on a real socket,
moves each recipient through its delivery states over time, posts callbacks (optionally dropped,
duplicated, out of order), receives inbound messages a test injects (for polling, or posted to the
inbound subscription and retried as BICS does), records conversion reports and lets a test inject
faults::

    from opensms_async import OpenSMSClient
    from opensms_async.testing import Fault, run_simulator

    async def test_send() -> None:
        async with run_simulator(seed=1) as sim:
            # Sent, but the client sees a connection error and retries under its correlator.
            sim.simulator.add_fault(Fault.drop_response(endpoint="send"))
            async with OpenSMSClient(api_key=sim.api_key, base_url=sim.base_url) as client:
                sent = await client.send_message("tel:+3212345", ["+33612345678"], "Hi")
            assert (sim.simulator.sends, sim.simulator.replays) == (1, 1)
            await sim.simulator.settle()
            assert sim.simulator.state_of(sent.request_id, "+33612345678") == "DeliveredToTerminal"

With pytest, the ``opensms_simulator`` and ``opensms_simulator_factory`` fixtures (registered by
this package's pytest plugin) do the same from a background thread, under any async framework.
"""

from ._callbacks import CallbackAttempt, PlannedCallback
from ._faults import Endpoint, Fault, FaultAction, RequestRecord
from ._inbound import BICS_RETRY_DELAYS, ConversionReport, InboundAttempt
from ._inbound_wire import InboundPart, InjectedInbound
from ._running import RunningSimulator, run_simulator, run_simulator_in_thread
from ._simulator import SentMessage, Simulator

__all__ = [
    "BICS_RETRY_DELAYS",
    "CallbackAttempt",
    "ConversionReport",
    "Endpoint",
    "Fault",
    "FaultAction",
    "InboundAttempt",
    "InboundPart",
    "InjectedInbound",
    "PlannedCallback",
    "RequestRecord",
    "RunningSimulator",
    "SentMessage",
    "Simulator",
    "run_simulator",
    "run_simulator_in_thread",
]
