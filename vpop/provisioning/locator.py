"""Where things are in a TOML file: tomllib reports no positions, so the lines of
[[section]] headers and of keys inside them are found here, for the messages of
problems, and the places where a long file can be cut into batches of whole tables.
"""

from __future__ import annotations

import bisect
import re
from array import array
from collections.abc import Iterator

_HEADER = re.compile(r"\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(#.*)?$")


class Locator:
    """Line numbers of [[section]] headers and of keys inside them.

    Only lines that start outside strings and brackets count, so a multi-line
    string or array that happens to contain "[[subscriber]]" does not confuse it.
    Kept compact (arrays of numbers and the text itself) because a plan holds it for
    the messages of problems found later: a key's line is looked up when needed.
    """

    def __init__(self, text: str):
        self._text = text
        self._starts = array("q")  # offset in the text where each line starts
        self._structural = array("l")  # numbers of the lines that start at the top level
        # every header: its line number, its dotted table name, whether [[an array]]
        self._header_lines = array("l")
        self._header_names: list[str] = []
        self._header_arrays = bytearray()
        names: dict[str, str] = {}  # one string per distinct name
        for number, line in structural_lines(text, self._starts):
            self._structural.append(number)
            if "[" not in line:
                continue
            match = _HEADER.match(line)
            if match:
                name = re.sub(r"\s*\.\s*", ".", match.group(2)).replace('"', "").replace("'", "")
                self._header_lines.append(number)
                self._header_names.append(names.setdefault(name, name))
                self._header_arrays.append(match.group(1) == "[[")
        self._arrays: dict[str, array] = {}  # array name -> positions of its headers
        for position, name in enumerate(self._header_names):
            if self._header_arrays[position]:
                self._arrays.setdefault(name, array("l")).append(position)

    def entry_line(self, section: str, index: int) -> int | None:
        positions = self._arrays.get(section, ())
        if index <= len(positions):
            return self._header_lines[positions[index - 1]]
        return self.top_line(section)  # e.g. subscriber = [{...}, ...]

    def field_line(self, section: str, index: int, key: str) -> int | None:
        positions = self._arrays.get(section, ())
        if index > len(positions):
            return None
        position = positions[index - 1]
        own_end = None  # the table's own keys end at the next header of any kind
        for later in range(position + 1, len(self._header_names)):
            own_end = own_end or self._header_lines[later]
            name = self._header_names[later]
            if name == f"{section}.{key}":  # [[subscriber.lines]]
                return self._header_lines[later]
            if not name.startswith(section + "."):
                break
        return self._key_in(key, self._header_lines[position], own_end)

    def top_line(self, key: str) -> int | None:
        for number, name in zip(self._header_lines, self._header_names):
            if name == key or name.startswith(key + "."):
                return number
        first_header = self._header_lines[0] if self._header_lines else None
        return self._key_in(key, 0, first_header)

    def table_count(self) -> int:
        """The top-level [[tables]] of the file."""
        return sum(1 for name, is_array in zip(self._header_names, self._header_arrays)
                   if is_array and "." not in name)

    def cuts(self, tables: int) -> list[int]:
        """Line numbers before which to cut the file into batches of `tables` top-level
        [[tables]]; the first is the first header's."""
        cuts, count = [], 0
        for number, name, is_array in zip(self._header_lines, self._header_names,
                                          self._header_arrays):
            if is_array and "." not in name:
                if count % tables == 0:
                    cuts.append(number)
                count += 1
        return cuts

    def keys_before_first_header(self) -> bool:
        """Whether anything but blank lines and comments precedes the first header."""
        first = self._header_lines[0] if self._header_lines else None
        for number in self._structural:
            if first is not None and number >= first:
                break
            line = self._line(number).strip()
            if line and not line.startswith("#"):
                return True
        return False

    def text_of(self, first: int, end: int | None) -> str:
        """Lines `first` up to `end` (not included; None: to the end of the file)."""
        stop = len(self._text) if end is None else self._starts[end - 1]
        return self._text[self._starts[first - 1]:stop]

    def _line(self, number: int) -> str:
        start = self._starts[number - 1]
        stop = self._starts[number] if number < len(self._starts) else len(self._text)
        return self._text[start:stop].rstrip("\r\n")

    def _key_in(self, key: str, start: int, end: int | None) -> int | None:
        """The first line after ``start`` and before ``end`` that assigns ``key``."""
        pattern = re.compile(rf"\s*(?:{re.escape(key)}|\"{re.escape(key)}\"|'{re.escape(key)}')"
                             r"\s*[=.]")
        for position in range(bisect.bisect_right(self._structural, start),
                              len(self._structural)):
            number = self._structural[position]
            if end is not None and number >= end:
                break
            if pattern.match(self._line(number)):
                return number
        return None


_TOP_LEVEL_SPECIAL = re.compile(r"[#\"'\[\]{}]")
_SIMPLE_STRINGS = re.compile(r'"[^"\\]*"|\'[^\']*\'')
_BASIC_STRING_END = re.compile(r'[\\"]')
_MULTILINE_BASIC_END = re.compile(r'\\|"""')


def structural_lines(text: str, starts: array | None = None) -> Iterator[tuple[int, str]]:
    """(number, line) for each line that starts at the top level of the TOML syntax;
    with `starts`, the offset of every line's start is appended to it. Lines end at
    "\\n", as tomllib counts them. Runs of plain characters are skipped by regular
    expression, not looked at one by one."""
    state = ""  # "", '"', "'", '"""' or "'''"
    depth = 0
    position, number, size = 0, 0, len(text)
    while position < size:
        end = text.find("\n", position)
        end = size if end < 0 else end
        line = text[position:end]
        if line.endswith("\r"):
            line = line[:-1]
        number += 1
        if starts is not None:
            starts.append(position)
        position = end + 1
        if not state and depth == 0:
            yield number, line
        # Most lines hold only strings that close on the line, brackets and comments:
        # counted without walking them (a triple quote or an escape takes the long way).
        if not state and '"""' not in line and "'''" not in line:
            bare = _SIMPLE_STRINGS.sub("", line)
            if '"' not in bare and "'" not in bare:
                bare = bare.split("#", 1)[0]
                depth += bare.count("[") + bare.count("{") - bare.count("]") - bare.count("}")
                continue
        i = 0
        while True:
            if not state:
                found = _TOP_LEVEL_SPECIAL.search(line, i)
                if found is None:
                    break
                i, char = found.start(), found.group()
                if char == "#":
                    break
                if line.startswith('"""', i) or line.startswith("'''", i):
                    state, i = line[i:i + 3], i + 3
                    continue
                if char in "\"'":
                    state = char
                elif char in "[{":
                    depth += 1
                else:
                    depth -= 1
                i += 1
            elif state == '"':
                found = _BASIC_STRING_END.search(line, i)
                if found is None:
                    break
                if found.group() == "\\":
                    i = found.start() + 2
                    continue
                state, i = "", found.end()
            elif state == "'":
                found_at = line.find("'", i)
                if found_at < 0:
                    break
                state, i = "", found_at + 1
            else:  # a multi-line string: escapes in basic ones only
                if state == '"""':
                    found = _MULTILINE_BASIC_END.search(line, i)
                    if found is not None and found.group() == "\\":
                        i = found.start() + 2
                        continue
                    found_at = -1 if found is None else found.start()
                else:
                    found_at = line.find("'''", i)
                if found_at < 0:
                    break
                rest = line[found_at:]
                run = len(rest) - len(rest.lstrip(state[0]))
                state, i = "", found_at + run  # up to two quotes may end the content itself
        if len(state) == 1:  # single-line strings end with the line in valid TOML
            state = ""
