"""``pythonic``: Llama 3.2 / Llama 4 style calls, a Python list of calls as the reply.

    [get_weather(city="Paris", days=3), get_time()]

Parsed with :mod:`ast`, never evaluated: only keyword arguments with literal values
(strings, numbers, booleans, None, lists, dicts, tuples) make a call. A list that is
something else (``[1] is a footnote``) is content.

The list is parsed when its ``[`` closes, its long literals in pieces as they stream
(see :mod:`.assembly`). :class:`PythonCallListScan` follows the text as it streams and
gives the list up as soon as it cannot be calls (``[Note: I'm``), so such a reply
streams as content instead of waiting for its end. (A callee written in parentheses,
``[(f)(a=1)]``, is not recognised as a call.)
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from typing import Any

from openai_frontend.parsing.assembly import PYTHON, Assembly, Hole
from openai_frontend.parsing.base import ParsedCall
from openai_frontend.parsing.scanning import PythonCallListScan
from openai_frontend.parsing.tools_block import BlockToolParser, Closed


class PythonicToolParser(BlockToolParser):
    def _sniff(self, head: str) -> int | None:
        return 0 if head.startswith("[") else -1

    def _enter_block(self, opened: str) -> None:
        super()._enter_block(opened)
        self._assembly = Assembly(PYTHON, cut_from=3)  # inside argument values
        self._scan = PythonCallListScan(self._assembly)

    def _close(self, body: str) -> Closed | None:
        found = self._scan.scan(body)
        if found is None:
            return None
        if not found.closed:
            return None, found.end
        skeleton = self._assembly.skeleton(body, 0, found.end)
        try:
            tree = ast.parse(skeleton.text, mode="eval")
        except (SyntaxError, ValueError, RecursionError):  # ValueError: a null byte
            return None, found.end
        return _calls(tree.body, skeleton.holes), found.end


def _calls(node: ast.expr, holes: Sequence[Hole] = ()) -> list[ParsedCall] | None:
    if not isinstance(node, ast.List) or not node.elts:
        return None
    try:
        return [_call(element, holes) for element in node.elts]
    except (ValueError, TypeError, RecursionError):  # not literals, or unhashable keys
        return None


def _call(node: ast.expr, holes: Sequence[Hole]) -> ParsedCall:
    if not isinstance(node, ast.Call) or node.args:
        raise ValueError("not a call with keyword arguments only")
    arguments: dict[str, Any] = {}
    for keyword in node.keywords:
        if keyword.arg is None:
            raise ValueError("**kwargs is not a literal argument")
        arguments[keyword.arg] = ast.literal_eval(keyword.value)
    return ParsedCall.of(_dotted_name(node.func), arguments, holes)


def _dotted_name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted_name(node.value)}.{node.attr}"
    raise ValueError("the called thing is not a name")
