"""The one cattrs converter that maps the models to the wire's camelCase JSON.

Lenient where the API may grow: unknown fields are ignored, unknown ``deliveryStatus`` strings are
kept as plain ``str``, a list of models (``deliveryInfo``, ``inboundSMSMessage``) may be one object
or a list, and a field marked ``metadata={"lenient": True}`` (an ``int | None``) reads anything but
an integer as None. Strict where it matters: a missing required field is a
:class:`WireFormatError`, never a half-built model.
"""

from __future__ import annotations

import functools
import re
import types
from collections.abc import Mapping
from typing import Any, TypeVar, Union, get_args, get_origin

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from . import _json
from ._models import DeliveryStatus, Status

__all__ = ["WireFormatError", "decode_json", "encode_json", "structure", "unstructure", "wire_name"]

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


def _is_optional(cls: object) -> bool:
    args = get_args(cls)
    return get_origin(cls) in (Union, types.UnionType) and len(args) == 2 and type(None) in args


def _models_hook(converter: cattrs.Converter, cls: Any) -> Any:
    """The hook of ``list[Model]``: one object or a list of them, the item hook looked up once."""
    (item_cls,) = get_args(cls)
    item_hook = converter.get_structure_hook(item_cls)

    def structure_models(value: object, _: object) -> list[Any]:
        # json.loads makes dicts: test for one before the ABC check, which costs ten times more.
        items = [value] if type(value) is dict or isinstance(value, Mapping) else value
        if not isinstance(items, list):
            raise TypeError(f"expected a {item_cls.__name__} object or a list of them")
        return [item_hook(item, item_cls) for item in items]

    return structure_models


def _optional_hook(converter: cattrs.Converter, cls: Any) -> Any:
    """The hook of ``X | None``: None, or ``X``'s hook, found once here rather than by cattrs'
    dispatch on every value (a third of the cost of reading a send's answer)."""
    (inner,) = [arg for arg in get_args(cls) if arg is not type(None)]
    inner_hook = converter.get_structure_hook(inner)

    def structure_optional(value: object, _: object) -> Any:
        return None if value is None else inner_hook(value, inner)

    return structure_optional


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter()
    converter.register_structure_hook_func(lambda t: t == Status, _structure_status)
    converter.register_structure_hook(str, _structure_str)
    converter.register_unstructure_hook(DeliveryStatus, lambda status: status.value)

    converter.register_structure_hook_factory(
        _is_model_list, lambda cls: _models_hook(converter, cls)
    )
    converter.register_structure_hook_factory(
        _is_optional, lambda cls: _optional_hook(converter, cls)
    )
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
        return _json.loads(data)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise WireFormatError(f"not JSON: {exc}") from None
    except RecursionError:
        raise WireFormatError("not JSON this client reads: nested too deeply") from None


def structure(data: object, cls: type[T]) -> T:
    """Build ``cls`` from decoded JSON, or raise :class:`WireFormatError` saying what is wrong."""
    if type(data) is not dict and not isinstance(data, Mapping):
        raise WireFormatError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
    try:
        return _converter().structure(data, cls)
    except (cattrs.BaseValidationError, TypeError, ValueError, KeyError) as exc:
        raise WireFormatError(f"{cls.__name__}: {_describe(exc)}") from None


def encode_json(payload: object) -> bytes:
    """The UTF-8 JSON of ``payload``, non-ASCII text as it is (not ``\\u`` escapes)."""
    return _json.dumps(payload)


def unstructure(obj: object) -> dict[str, Any]:
    """The wire JSON object of a model, leaving out fields that hold their default."""
    result: dict[str, Any] = _converter().unstructure(obj)
    return result


def _describe(exc: BaseException) -> str:
    if isinstance(exc, cattrs.BaseValidationError):
        notes = cattrs.transform_error(exc)
        return "; ".join(notes) if notes else str(exc)
    return str(exc)
