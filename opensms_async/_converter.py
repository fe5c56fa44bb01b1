"""The one cattrs converter that maps the models to the wire's camelCase JSON.

Lenient where the API may grow: unknown fields are ignored, unknown ``deliveryStatus`` strings are
kept as plain ``str``, a list of models (``deliveryInfo``, ``inboundSMSMessage``) may be one object
or a list, and a field marked ``metadata={"lenient": True}`` (an ``int | None``) reads anything but
an integer as None. Strict where it matters: a missing required field is a
:class:`WireFormatError`, never a half-built model.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from typing import Any, TypeVar, get_args, get_origin

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from ._models import DeliveryStatus, Status

__all__ = ["WireFormatError", "decode_json", "structure", "unstructure", "wire_name"]

T = TypeVar("T")

_CAMEL_BOUNDARY = re.compile(r"_([a-z0-9])")


class WireFormatError(ValueError):
    """A JSON document that does not have the shape of the model asked for."""


def wire_name(field: attrs.Attribute[Any]) -> str:
    """The JSON key of a model field: its ``wire`` metadata, else its name in camelCase."""
    explicit = field.metadata.get("wire")
    if explicit is not None:
        return str(explicit)
    return _CAMEL_BOUNDARY.sub(lambda m: m.group(1).upper(), field.name)


def _renames(cls: type) -> dict[str, Any]:
    return {
        f.name: override(rename=wire_name(f), struct_hook=_field_hook(f)) for f in attrs.fields(cls)
    }


def _field_hook(field: attrs.Attribute[Any]) -> Any:
    return _structure_lenient_int if field.metadata.get("lenient") else None


_DIGITS = re.compile(r"[+-]?[0-9]{1,18}")


def _structure_lenient_int(value: object, _: object) -> int | None:
    # A mistyped count or UDH field must not fail a whole inbound page: it reads as absent.
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        return int(value)
    return None


def _is_model_list(cls: object) -> bool:
    args = get_args(cls)
    return get_origin(cls) is list and len(args) == 1 and attrs.has(args[0])


def _structure_status(value: object, _: object) -> Status:
    if not isinstance(value, str):
        raise TypeError(f"deliveryStatus must be a string, not {type(value).__name__}")
    return DeliveryStatus.parse(value)


def _structure_str(value: object, _: object) -> str:
    # cattrs' default is str(value), which would turn a nested object into its repr.
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"expected a string, not {type(value).__name__}")


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter()
    converter.register_structure_hook_func(lambda t: t == Status, _structure_status)
    converter.register_structure_hook(str, _structure_str)
    converter.register_unstructure_hook(DeliveryStatus, lambda status: status.value)

    def structure_models(value: object, cls: Any) -> list[Any]:
        (item_cls,) = get_args(cls)
        items = [value] if isinstance(value, Mapping) else value
        if not isinstance(items, list):
            raise TypeError(f"expected a {item_cls.__name__} object or a list of them")
        return [converter.structure(item, item_cls) for item in items]

    converter.register_structure_hook_func(_is_model_list, structure_models)
    converter.register_structure_hook_factory(
        attrs.has, lambda cls: make_dict_structure_fn(cls, converter, **_renames(cls))
    )
    converter.register_unstructure_hook_factory(
        attrs.has,
        lambda cls: make_dict_unstructure_fn(
            cls, converter, _cattrs_omit_if_default=True, **_renames(cls)
        ),
    )
    return converter


@functools.cache
def _converter() -> cattrs.Converter:
    # Built once, on first use; a private instance, never cattrs' global converter.
    return _make_converter()


def decode_json(data: bytes | str) -> Any:
    """The decoded JSON document, or :class:`WireFormatError` when ``data`` is not one.

    Deep nesting (``[[[[...]]]]``, ten thousand levels) makes ``json.loads`` raise
    ``RecursionError``, which is no ``ValueError``: it is turned into the same error as any other
    malformed body, never let through.
    """
    try:
        return json.loads(data)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise WireFormatError(f"not JSON: {exc}") from None
    except RecursionError:
        raise WireFormatError("not JSON this client reads: nested too deeply") from None


def structure(data: object, cls: type[T]) -> T:
    """Build ``cls`` from decoded JSON, or raise :class:`WireFormatError` saying what is wrong."""
    if not isinstance(data, Mapping):
        raise WireFormatError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
    try:
        return _converter().structure(data, cls)
    except (cattrs.BaseValidationError, TypeError, ValueError, KeyError) as exc:
        raise WireFormatError(f"{cls.__name__}: {_describe(exc)}") from None


def unstructure(obj: object) -> dict[str, Any]:
    """The wire JSON object of a model, leaving out fields that hold their default."""
    result: dict[str, Any] = _converter().unstructure(obj)
    return result


def _describe(exc: BaseException) -> str:
    if isinstance(exc, cattrs.BaseValidationError):
        notes = cattrs.transform_error(exc)
        return "; ".join(notes) if notes else str(exc)
    return str(exc)
