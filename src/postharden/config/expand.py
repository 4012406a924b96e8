"""`$name` expansion, as Postfix's mac_parse() and mac_expand() do it.

Supported forms (src/util/mac_expand.c, Postfix 3.x):

- `$name`, `${name}`, `$(name)`: the value of name, itself expanded (recursively);
  an undefined name expands to nothing. `$$` is a literal `$`.
- `${name?text}`, `${name?{text}}`: text when name's value is non-empty.
- `${name:text}`, `${name:{text}}`: text when name's value is empty or undefined.
- `${name?{a}:{b}}`, `${name?{a}:b}`: a when non-empty, else b.
- `${{x} OP {y} ? {a} : {b}}` with OP in ==, !=, <, <=, >=, > (numeric when both sides are
  all digits, otherwise by bytes) and the `level` suffix (`<level`, `>=level`, ...) that
  compares compatibility levels such as `3.6` by major.minor.patch.

Postfix treats a syntax error or more than 100 nested macro calls (an `a = $b`,
`b = $a` loop) as fatal ("macro processing error"); so does this module, by raising
ExpansionError.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from postharden.config.syntax import SPACE

# A lookup returns the raw (unexpanded) value of a name, or None when it is undefined.
# `test` is True for the `?`/`:` forms, where Postfix does not warn about undefined names.
Lookup = Callable[[str, bool], str | None]

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_OPERATOR_CHARS = "<>!=?+-*/~&|%"
_OPERATORS = frozenset({"==", "!=", "<", "<=", ">=", ">"})
_MAX_NESTING = 100
_BOOL_TRUE = "true"


class ExpansionError(ValueError):
    """A `$` expression Postfix would refuse ("macro processing error")."""


class Expansion(NamedTuple):
    value: str
    # Names that were looked up in plain `$name` form and were undefined.
    undefined: frozenset[str]
    # Every name looked up, directly or through other values (for dependency tracking).
    references: frozenset[str]


def parse_compat_level(text: str) -> tuple[int, int, int] | None:
    """`3.6` -> (3, 6, 0); None when it is not a compatibility level (compat_level.c)."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 3 or not all(part.isdigit() and part.isascii() for part in parts):
        return None
    numbers = [int(part) for part in parts] + [0] * (3 - len(parts))
    return numbers[0], numbers[1], numbers[2]


def _compare(left: object, operator: str, right: object) -> bool:
    assert isinstance(left, (int, bytes, tuple)) and type(left) is type(right)
    if operator == "==":
        return left == right
    if operator == "!=":
        return left != right
    if operator == "<":
        return left < right  # type: ignore[operator]
    if operator == "<=":
        return left <= right  # type: ignore[operator]
    if operator == ">=":
        return left >= right  # type: ignore[operator]
    return left > right  # type: ignore[operator]


def _all_digits(text: str) -> bool:
    return all("0" <= ch <= "9" for ch in text)


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in SPACE:
        position += 1
    return position


class _Expander:
    def __init__(self, lookup: Lookup, cache: dict[str, Expansion] | None) -> None:
        self.lookup = lookup
        self.cache = cache
        self.out: list[str] = []
        self.level = 0
        self.undefined: set[str] = set()
        self.references: set[str] = set()

    # mac_parse(): split into literal text and $ expressions.
    def parse(self, value: str) -> None:
        literal: list[str] = []
        i, n = 0, len(value)
        while i < n:
            ch = value[i]
            if ch != "$":
                literal.append(ch)
                i += 1
                continue
            if i + 1 < n and value[i + 1] == "$":
                literal.append("$")
                i += 2
                continue
            if literal:
                self.literal("".join(literal))
                literal = []
            i += 1
            if i < n and value[i] in "({":
                opening = value[i]
                closing = ")" if opening == "(" else "}"
                depth = 1
                i += 1
                j = i
                while depth > 0:
                    if j >= n:
                        raise ExpansionError(f'truncated macro reference: "{value}"')
                    if value[j] == opening:
                        depth += 1
                    elif value[j] == closing:
                        depth -= 1
                    j += 1
                name = value[i : j - 1]
                i = j
            else:
                j = i
                while j < n and value[j] in _NAME_CHARS:
                    j += 1
                name = value[i:j]
                i = j
            if not name:
                raise ExpansionError(f'empty macro name: "{value}"')
            self.expression(name)
        if literal:
            self.literal("".join(literal))

    def literal(self, text: str) -> None:
        self.out.append(text)

    def _enter(self, text: str) -> None:
        self.level += 1
        if self.level > _MAX_NESTING:
            raise ExpansionError(f'unreasonable macro call nesting: "{text}"')

    # mac_expand_callback() for one $ expression.
    def expression(self, text: str) -> None:
        self._enter(text)
        try:
            self._expression(text)
        finally:
            self.level -= 1

    def _expression(self, text: str) -> None:
        cp = _skip_space(text, 0)
        looked_up: str | None
        name = ""
        if cp < len(text) and text[cp] == "{":
            looked_up, cp = self._relational(text, cp)
            if cp < len(text):
                operator = text[cp]
                if operator not in "?:":
                    raise ExpansionError(f'"?" or ":" expected at: "...}}>>>{text[cp : cp + 20]}"')
                cp += 1
            else:
                operator = ""
        else:
            start = cp
            while True:
                after_space = _skip_space(text, cp)
                if after_space >= len(text):
                    name, operator = text[start:cp], ""
                    break
                if text[after_space] in "?:":
                    name, operator = text[start:cp], text[after_space]
                    cp = after_space + 1
                    break
                if text[after_space] == "{":
                    raise ExpansionError(f'unknown function: "{text[start:cp]}"')
                if text[cp] not in _NAME_CHARS:
                    raise ExpansionError(
                        f'attribute name syntax error at: "...{text[:cp]}>>>{text[cp : cp + 20]}"'
                    )
                cp += 1
            self.references.add(name)
            if operator == "" and self.cache is not None and name in self.cache:
                known = self.cache[name]
                self.out.append(known.value)
                self.undefined.update(known.undefined)
                self.references.update(known.references)
                return
            looked_up = self.lookup(name, operator != "")

        if operator == "?":
            brace = _skip_space(text, cp)
            if brace < len(text) and text[brace] == "{":
                if_true, cp = self._curly(text, brace)
            else:
                if_true, cp = text[cp:], len(text)
            if looked_up:
                self.parse(if_true)
            if cp >= len(text):
                return
            if text[cp] != ":":
                raise ExpansionError(f'":" expected at: "...{if_true}}}>>>{text[cp : cp + 20]}"')
            cp += 1
            operator = ":"
        if operator == ":":
            brace = _skip_space(text, cp)
            if brace < len(text) and text[brace] == "{":
                if_false, cp = self._curly(text, brace)
            else:
                if_false, cp = text[cp:], len(text)
            if not looked_up:
                self.parse(if_false)
            if cp < len(text):
                raise ExpansionError(
                    f'unexpected input at: "...{if_false}}}>>>{text[cp : cp + 20]}"'
                )
            return
        if looked_up is None:
            self.undefined.add(name)
        elif looked_up:
            self.parse(looked_up)

    @staticmethod
    def _curly(text: str, brace: int) -> tuple[str, int]:
        """The payload of a balanced {...} at text[brace]; position after it and its spaces."""
        depth = 1
        i = brace + 1
        while True:
            if i >= len(text):
                raise ExpansionError(f'unbalanced {{}} in attribute expression: "{text[brace:]}"')
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        return text[brace + 1 : i], _skip_space(text, i + 1)

    def _relational(self, text: str, brace: int) -> tuple[str, int]:
        left_text, cp = self._curly(text, brace)
        op_end = cp
        while op_end < len(text) and text[op_end] in _OPERATOR_CHARS:
            op_end += 1
        operator = text[cp:op_end]
        if operator not in _OPERATORS:
            raise ExpansionError(
                f'"==" or "!=" or "<" or "<=" or ">=" or ">" expected at: '
                f'"...{left_text}}}>>>{text[cp : cp + 20]}"'
            )
        cp = op_end
        suffix_end = cp
        while suffix_end < len(text) and text[suffix_end].isascii() and text[suffix_end].isalnum():
            suffix_end += 1
        suffix = text[cp:suffix_end]
        if suffix and suffix != "level":
            raise ExpansionError(f'bad operator suffix at: "...{operator}>>>{suffix}"')
        cp = _skip_space(text, suffix_end)
        if cp >= len(text) or text[cp] != "{":
            raise ExpansionError(
                f'"{{expression}}" expected at: "...{{{left_text}}} {operator}>>>{text[cp : cp + 20]}"'
            )
        right_text, cp = self._curly(text, cp)
        left = self._sub_expand(left_text)
        right = self._sub_expand(right_text)
        if suffix == "level":
            left_level, right_level = parse_compat_level(left), parse_compat_level(right)
            if left_level is None or right_level is None:
                bad = left if left_level is None else right
                raise ExpansionError(f'malformed compatibility level syntax: "{bad}"')
            result = _compare(left_level, operator, right_level)
        elif left and right and _all_digits(left) and _all_digits(right):
            # An empty operand compares as text: `{} == {}` is true, `{} == {0}` false
            # (checked against postconf 3.7.11).
            result = _compare(int(left), operator, int(right))
        else:
            result = _compare(left.encode(), operator, right.encode())
        return (_BOOL_TRUE if result else ""), cp

    def _sub_expand(self, text: str) -> str:
        # Postfix expands relational operands in a fresh context (its own nesting count);
        # keep counting here so that a self-referencing operand still ends.
        saved = self.out
        self.out = []
        try:
            self.parse(text)
            return "".join(self.out)
        finally:
            self.out = saved


def expand(value: str, lookup: Lookup, cache: dict[str, Expansion] | None = None) -> Expansion:
    """Expand a raw Postfix value; raise ExpansionError where Postfix would die.

    `cache` maps names to their finished expansions in the same context; a plain `$name`
    found there is not expanded again.
    """
    if "$" not in value:
        return Expansion(value, frozenset(), frozenset())
    expander = _Expander(lookup, cache)
    try:
        expander.parse(value)
    except RecursionError as error:  # pathological depth through relational operands
        raise ExpansionError(f'unreasonable macro call nesting: "{value[:60]}"') from error
    return Expansion(
        "".join(expander.out), frozenset(expander.undefined), frozenset(expander.references)
    )
