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

For tests of a receiver of your own: :func:`serve` runs any ASGI app under uvicorn on a free
127.0.0.1 port for the length of an ``async with`` block, and :func:`delivery_callback_body`
builds the JSON body BICS posts to a delivery-info subscription. :class:`ManualClock` is a
clock and a sleep that move only when the test says (``DeliveryTracker(clock=clock.time,
sleep=clock.sleep)``), so a test of reconciliation waits for nothing::

    import httpx
    from opensms_async import DeliveryTracker, create_receiver_app
    from opensms_async.testing import delivery_callback_body, serve

    async def test_receiver() -> None:
        app = create_receiver_app(DeliveryTracker(), "tok")
        async with serve(app) as server, httpx.AsyncClient() as http:
            body = delivery_callback_body(
                "req-1", "tel:+33612345678", "DeliveredToTerminal", security_token="tok"
            )
            response = await http.post(f"{server.url}/sms/callback", json=body)
            assert response.status_code == 204
"""

from .._server import RunningServer, serve
from ._callbacks import CallbackAttempt, PlannedCallback
from ._clock import ManualClock
from ._faults import Endpoint, Fault, FaultAction, RequestRecord
from ._inbound import BICS_RETRY_DELAYS, ConversionReport, InboundAttempt
from ._inbound_wire import InboundPart, InjectedInbound
from ._running import RunningSimulator, run_simulator, run_simulator_in_thread
from ._simulator import SentMessage, Simulator
from ._wire import delivery_callback_body

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
    "ManualClock",
    "PlannedCallback",
    "RequestRecord",
    "RunningServer",
    "RunningSimulator",
    "SentMessage",
    "Simulator",
    "delivery_callback_body",
    "run_simulator",
    "run_simulator_in_thread",
    "serve",
]
