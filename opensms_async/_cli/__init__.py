"""The ``opensms`` command line: the only package that prints.

One module per command group, each with a ``register(commands)`` that adds its commands:
``_messages`` (send, status, segments), ``_send_many``, ``_subscription``, ``_receive``,
``_events``, ``_inbound`` (inbound subscription, poll), ``_inbox``, ``_convert``, ``_local``
(simulate, demo), ``_doctor``, ``_completion``; ``_main.GROUPS`` lists them. What they share
is in ``_base`` (global options, credentials, exit codes, option types, servers and signals),
``_output`` (text or ``--json``; JSON lines for streams) and ``_stores``
(store URLs for readers and writers). A new group is a new module with ``register`` and one
line in ``GROUPS``.
"""

from ._main import build_parser, main
from ._output import event_json

__all__ = ["build_parser", "event_json", "main"]
