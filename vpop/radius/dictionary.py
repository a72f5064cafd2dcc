"""Attribute names, types and values from the RADIUS dictionaries, via pyrad's parser."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from pyrad import dictionary as pyrad_dictionary
from pyrad import tools as pyrad_tools

from vpop.errors import ConfigError, MalformedPacket
from vpop.radius.codec import Key, attribute, vendor_attribute


@dataclass(frozen=True, slots=True)
class AttrDef:
    name: str
    key: Key
    type: str
    encrypt: int  # 1: User-Password style, 2: salted (RFC 2868), 3: Ascend
    has_tag: bool
    values: dict[str, bytes]  # VALUE name -> encoded value
    value_names: dict[bytes, str]


class Dictionary:
    """Lookups both ways between names and wire keys, and typed value coding."""

    def __init__(self, path: str | os.PathLike[str]):
        quiet = logging.getLogger("pyrad")
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # it warns about the 'vsa' type it skips, every load
        try:
            parsed = pyrad_dictionary.Dictionary(str(path))
        except (OSError, pyrad_dictionary.ParseError) as exc:
            raise ConfigError(f"cannot load RADIUS dictionary: {exc}", file=str(path)) from None
        finally:
            quiet.setLevel(level)
        self.by_name: dict[str, AttrDef] = {}
        self.by_key: dict[Key, AttrDef] = {}
        for name, attr in parsed.attributes.items():
            if attr.is_sub_attribute:
                continue
            vendor = parsed.vendors.GetForward(attr.vendor) if attr.vendor else 0
            key: Key = (vendor, attr.code) if vendor else attr.code
            # pyrad keeps VALUEs encoded; keep both directions as octets.
            values = dict(attr.values.forward.items()) if attr.values else {}
            definition = AttrDef(name=name, key=key, type=attr.type, encrypt=attr.encrypt or 0,
                                 has_tag=bool(attr.has_tag), values=values,
                                 value_names={v: k for k, v in values.items()})
            self.by_name[name] = definition
            self.by_key[key] = definition

    def __getitem__(self, name: str) -> AttrDef:
        return self.by_name[name]

    def key(self, name: str) -> Key:
        return self.by_name[name].key

    def encode_value(self, definition: AttrDef, value: Any) -> bytes:
        """Typed value to octets. Integers accept their VALUE names."""
        if isinstance(value, str) and value in definition.values:
            return definition.values[value]
        if definition.type in ("integer", "signed", "short", "byte", "integer64", "date"):
            value = int(value)
        elif definition.type == "octets" and isinstance(value, str):
            value = value.encode()
        return pyrad_tools.EncodeAttr(definition.type, value)

    def decode_value(self, definition: AttrDef, raw: bytes) -> Any:
        """Octets to a typed value; a value that does not fit its type is malformed."""
        try:
            if definition.type == "string":
                return raw.decode("utf-8", "replace")
            if definition.type == "octets":
                return raw
            value = pyrad_tools.DecodeAttr(definition.type, raw)
        except (ValueError, TypeError, IndexError, OSError) as exc:
            raise MalformedPacket(f"{definition.name}: {exc}") from None
        except Exception as exc:  # pyrad raises struct.error and friends
            raise MalformedPacket(f"{definition.name}: {exc}") from None
        return value

    def encode(self, name: str, value: Any, tag: int = 0) -> bytes:
        """One attribute on the wire, VSA-wrapped when it belongs to a vendor."""
        try:
            definition = self.by_name[name]
        except KeyError:
            raise ConfigError(f"unknown attribute {name}") from None
        data = self.encode_value(definition, value)
        if definition.has_tag and (tag or definition.type != "integer"):
            # RFC 2868 §3.1: integer tunnel attributes carry the tag in the first octet
            data = bytes((tag,)) + (data[1:] if definition.type == "integer" else data)
        key = definition.key
        if isinstance(key, tuple):
            return vendor_attribute(key[0], key[1], data)
        return attribute(key, data)

    def encode_pairs(self, pairs: Iterable[tuple[str, Any]]) -> bytes:
        return b"".join(self.encode(name, value) for name, value in pairs)


def shipped_dictionary() -> Path:
    """The dictionaries shipped with vpop: the source tree, else the install prefix."""
    candidates = [Path(__file__).resolve().parents[2] / "radius-dictionaries" / "dictionary",
                  Path(sys.prefix) / "share" / "vpop" / "radius-dictionaries" / "dictionary"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ConfigError("the shipped RADIUS dictionaries are missing; set radius.dictionary")
