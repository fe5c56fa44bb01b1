"""SMS segment counting (3GPP TS 23.040, GSM 03.38), free of I/O.

A text that fits the GSM 7-bit default alphabet is sent as GSM-7: 160 septets in a single SMS,
153 per part once it must be concatenated (the user data header takes the rest). Characters of
the extension table cost two septets (escape + character) and an escape pair is never split
across two parts. Any other character forces UCS-2 for the whole text: 70 UTF-16 code units in a
single SMS, 67 per part, and a surrogate pair (a character above U+FFFF, such as most emoji) is
never split either.

BICS encodes the text after replacing each tab with four spaces and dropping backspaces, so the
counts here are made on the text normalised that way.
"""

from __future__ import annotations

import re

import attrs

__all__ = [
    "GSM7",
    "GSM7_BASIC",
    "GSM7_EXTENSION",
    "UCS2",
    "SegmentCount",
    "count_parts",
    "count_segments",
    "is_gsm7",
    "split_segments",
]

GSM7 = "GSM-7"
"""Name of the GSM 03.38 7-bit default alphabet encoding."""

UCS2 = "UCS-2"
"""Name of the 16-bit encoding used when a text does not fit GSM-7."""

# The basic table in code order, 0x00 to 0x7F. 0x1B is the escape to the extension table, not a
# character (kept as a placeholder so that positions read like the standard's table).
_BASIC_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)

GSM7_BASIC = frozenset(_BASIC_TABLE) - {"\x1b"} | {"ç"}
"""Characters of the GSM-7 basic table (one septet each).

0x09 is ``ç`` in Unicode's GSM0338 mapping and ``Ç`` in ETSI's drawing: both are accepted.
"""

GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")
"""Characters of the GSM-7 extension table (two septets each: escape + character)."""

_GSM7_ALL = GSM7_BASIC | GSM7_EXTENSION

_GSM7_SINGLE, _GSM7_PART = 160, 153
_UCS2_SINGLE, _UCS2_PART = 70, 67

# Characters costing two units: extension-table characters in GSM-7, astral characters (a
# surrogate pair) in UTF-16. The regex engine finds them without a Python loop over the text.
_EXTENSION_RE = re.compile("[" + "".join(sorted(re.escape(c) for c in GSM7_EXTENSION)) + "]")
_ASTRAL_RE = re.compile("[\U00010000-\U0010ffff]")

# BICS's own normalisation before encoding: tab -> four spaces, backspace dropped.
_BICS_NORMALISATION = str.maketrans({"\t": "    ", "\b": None})


@attrs.frozen
class SegmentCount:
    """How a text will be sent: its encoding, its length in units and the parts it needs."""

    encoding: str
    """``"GSM-7"`` or ``"UCS-2"``."""

    units: int
    """Length in septets (GSM-7) or UTF-16 code units (UCS-2), after BICS's normalisation."""

    parts: int
    """Number of SMS the text is split into (0 for an empty text)."""

    per_part: int
    """Capacity of each part: 160 or 70 for a single SMS, 153 or 67 once concatenated."""

    remaining: int
    """Units still free in the last part (the whole capacity for an empty text)."""

    characters: int
    """Length of the text as given, in code points."""


def _normalise(text: str) -> str:
    return text.translate(_BICS_NORMALISATION)


def is_gsm7(text: str) -> bool:
    """True when every character of ``text`` is in the GSM-7 basic or extension table.

    Tabs and backspaces count as GSM-7, since BICS replaces or drops them before encoding.
    """
    return _GSM7_ALL.issuperset(_normalise(text))


def _pack(units: int, wide: re.Pattern[str], text: str, single: int, part: int) -> tuple[int, int]:
    """Parts and free units left, filling each part greedily without splitting a 2-unit char.

    When the text does not fit one SMS, every part but the last holds exactly ``part`` units
    once a 2-unit character that would straddle a boundary is pushed whole into the next part
    (leaving one unit unused). So only the 2-unit characters need visiting: each one sits at
    ``index + (2-unit chars before it) + (unused units so far)``, and it straddles when that
    offset is the last unit of a part.
    """
    if units <= single:
        return (1 if units else 0), single - units
    unused = 0
    for before, match in enumerate(wide.finditer(text)):
        if (match.start() + before + unused) % part == part - 1:
            unused += 1
    parts = -(-(units + unused) // part)
    return parts, parts * part - units - unused


def count_segments(text: str) -> SegmentCount:
    """Count the SMS parts ``text`` needs, as BICS will encode it.

    Tabs become four spaces and backspaces are dropped first, as BICS does. An empty text
    gives ``parts=0`` (the client refuses to send one anyway).

    >>> count_segments("Hello €")
    SegmentCount(encoding='GSM-7', units=8, parts=1, per_part=160, remaining=152, characters=7)
    """
    normal = _normalise(text)
    if _GSM7_ALL.issuperset(normal):
        encoding, wide, single, part = GSM7, _EXTENSION_RE, _GSM7_SINGLE, _GSM7_PART
        units = len(normal) + sum(map(normal.count, GSM7_EXTENSION))
    else:
        encoding, wide, single, part = UCS2, _ASTRAL_RE, _UCS2_SINGLE, _UCS2_PART
        units = len(normal) + len(_ASTRAL_RE.findall(normal))
    parts, remaining = _pack(units, wide, normal, single, part)
    return SegmentCount(
        encoding=encoding,
        units=units,
        parts=parts,
        per_part=single if parts <= 1 else part,
        remaining=remaining,
        characters=len(text),
    )


def count_parts(text: str) -> int:
    """``count_segments(text).parts``, without counting units for a text that fits one SMS
    whatever its characters: after normalisation none costs more than 2 units (a GSM-7 escape,
    a UTF-16 surrogate pair), so up to 35 characters always fit, and up to 80 GSM-7 ones."""
    normal = _normalise(text)
    if not normal:
        return 0
    if 2 * len(normal) <= _UCS2_SINGLE:
        return 1
    if 2 * len(normal) <= _GSM7_SINGLE and _GSM7_ALL.issuperset(normal):
        return 1
    return count_segments(text).parts


def split_segments(text: str) -> list[str]:
    """The texts of the SMS parts ``text`` is sent in, split as a handset splits it.

    The same rules as :func:`count_segments` (whose ``parts`` is always the length of the
    result): the text normalised as BICS does, then cut into parts of 153 septets (GSM-7) or 67
    UTF-16 units (UCS-2) once it does not fit one SMS, never inside an escape or surrogate pair.
    The parts joined give the normalised text back; an empty text has no parts.
    """
    normal = _normalise(text)
    count = count_segments(text)
    if count.parts <= 1:
        return [normal] if normal else []
    wide = _EXTENSION_RE if count.encoding == GSM7 else _ASTRAL_RE
    parts: list[str] = []
    start = used = 0
    for index, char in enumerate(normal):
        cost = 2 if wide.match(char) else 1
        if used + cost > count.per_part:
            parts.append(normal[start:index])
            start, used = index, 0
        used += cost
    parts.append(normal[start:])
    return parts
