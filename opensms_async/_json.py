"""JSON in and out of the client, minus the wrappers of ``json.loads`` and ``json.dumps``.

Both sit on the path of every request: ``json.dumps(..., ensure_ascii=False)`` builds a new
encoder per call, and ``json.loads`` of bytes guesses the encoding and strips the text before
parsing. The answers are the same as theirs.
"""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Callable
from typing import Any

__all__ = ["dumps", "loads"]

_ENCODER = json.JSONEncoder(ensure_ascii=False)
"""``json.dumps(obj, ensure_ascii=False)``'s encoder, built once (it holds only its settings)."""

# What ``_ENCODER.encode`` builds anew on every call (``iterencode``), built once: the C encoder
# with its settings. No circular-reference check (``markers`` None): the client encodes only
# dicts it builds itself from its models, which hold no cycle; one would raise RecursionError.
_MAKE_ENCODER: Callable[..., Callable[[Any, int], list[str]]] | None = getattr(
    json.encoder, "c_make_encoder", None
)  # untyped in typeshed; None without the C accelerator
_C_ENCODE = (
    None
    if _MAKE_ENCODER is None
    else _MAKE_ENCODER(
        None,
        _ENCODER.default,
        json.encoder.encode_basestring,
        None,
        _ENCODER.key_separator,
        _ENCODER.item_separator,
        False,
        False,
        True,
    )
)

_DECODER = json.JSONDecoder()
_SCAN: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]
"""What ``_DECODER.raw_decode`` calls (the C scanner), called directly: one frame less."""
_WHITESPACE = " \t\n\r"


def dumps(obj: Any) -> bytes:
    """``json.dumps(obj, ensure_ascii=False).encode()``: UTF-8, non-ASCII text as it is."""
    if _C_ENCODE is None or isinstance(obj, str):  # no C accelerator; a bare string
        return _ENCODER.encode(obj).encode()
    return "".join(_C_ENCODE(obj, 0)).encode()


def loads(data: bytes | str) -> Any:
    """``json.loads(data)``, raising what it raises.

    Bytes opening with ``{`` and no NUL byte after it are UTF-8 to ``json.loads`` (no BOM, not
    UTF-16/32): decoded as it would, then parsed with nothing but JSON whitespace allowed after
    the document. Anything else takes the standard path, which decides.
    """
    if isinstance(data, bytes) and data[:1] == b"{" and data[1:2] != b"\x00":
        text = data.decode("utf-8", "surrogatepass")
        try:
            document, end = _SCAN(text, 0)
        except StopIteration as exc:  # a value cut short ("{\"a\":"): raw_decode's error
            raise json.JSONDecodeError("Expecting value", text, exc.value) from None
        if end == len(text) or not text[end:].strip(_WHITESPACE):
            return document
    return json.loads(data)
