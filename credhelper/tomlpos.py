"""Find the line a TOML key was written on, so config errors can say ``config.toml:12:``.

tomllib returns plain dicts with no positions. Hand-written config files are simple (table
headers, ``[[array]]`` elements, ``key = value`` lines), so a line scan is enough: find the table
or array element, then the key inside it; when the key cannot be found, point at the header.
Multi-line strings that happen to look like keys can fool it; the cost is a wrong line number.
"""

import re
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

PathPart = Union[str, int]
_KEY = r'(?:[A-Za-z0-9_\-]+|"[^"\n]*"|\'[^\'\n]*\')'
_DOTTED = rf"{_KEY}(?:\s*\.\s*{_KEY})*"
_ARRAY_HEADER = re.compile(rf"\s*\[\[\s*({_DOTTED})\s*\]\]\s*(?:#.*)?\Z")
_TABLE_HEADER = re.compile(rf"\s*\[\s*({_DOTTED})\s*\]\s*(?:#.*)?\Z")
_ASSIGN = re.compile(rf"\s*({_DOTTED})\s*=")


def _parts(dotted: str) -> Tuple[str, ...]:
    return tuple(p.strip("\"'") for p in re.findall(_KEY, dotted))


class _Section(NamedTuple):
    key: Tuple[str, ...]
    nth: Optional[int]           # position among same-named [[array]] elements
    line: int                    # 1-based line of the header (1 for the root)
    body: List[Tuple[int, Tuple[str, ...]]]   # (line, dotted key) of each assignment


class Locator:
    """Maps key paths such as ``("routes", 1, "url")`` to 1-based line numbers in ``text``."""

    def __init__(self, text: str) -> None:
        self._sections = [_Section((), None, 1, [])]
        counts: Dict[Tuple[str, ...], int] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            array = _ARRAY_HEADER.match(line)
            table = None if array else _TABLE_HEADER.match(line)
            if array:
                key = _parts(array.group(1))
                counts[key] = counts.get(key, -1) + 1
                self._sections.append(_Section(key, counts[key], number, []))
            elif table:
                self._sections.append(_Section(_parts(table.group(1)), None, number, []))
            else:
                assign = _ASSIGN.match(line)
                if assign:
                    self._sections[-1].body.append((number, _parts(assign.group(1))))

    def _section(self, header: Sequence[PathPart]) -> Optional[_Section]:
        index = None
        if header and isinstance(header[-1], int):
            header, index = header[:-1], header[-1]
        if any(not isinstance(part, str) for part in header):
            return None
        for section in self._sections:
            if section.key == tuple(header) and section.nth == index:
                return section
        return None

    def line(self, path: Sequence[PathPart]) -> int:
        """Best line for ``path``: the key's own line, else its table's header, else 1."""
        fallback = None
        for split in range(len(path), -1, -1):
            section = self._section(path[:split])
            if section is None:
                continue
            rest = path[split:]
            if not rest:
                return section.line
            names: List[str] = []
            for part in rest:
                if not isinstance(part, str):
                    break
                names.append(part)
            wanted = tuple(names)
            for number, key in section.body:
                if wanted and (key[:len(wanted)] == wanted or wanted[:len(key)] == key):
                    return number
            if fallback is None and section.key:
                fallback = section.line
        return fallback or 1
