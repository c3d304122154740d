"""SOQL text to a `Query`: a regex lexer and a small recursive-descent parser.

Salesforce requires parentheses wherever AND and OR meet (``a AND b OR c`` is MALFORMED_QUERY;
https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select_logicaloperators.htm),
so the only precedence left to decide is NOT's, which binds to the condition right after it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TypeVar

from sandbox.soql.errors import SoqlError
from sandbox.soql.syntax import (
    And,
    Comparison,
    Condition,
    FieldRef,
    Like,
    Not,
    Or,
    OrderKey,
    Query,
    Value,
    Wildcard,
)

__all__ = ["MAX_OFFSET", "parse"]

MAX_OFFSET = 2000  # Salesforce refuses a larger OFFSET

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
    | (?P<string>'(?:[^'\\]|\\.)*')
    | (?P<unterminated>')
    | (?P<datetime>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?
        (?:Z|[+-][0-9]{2}:?[0-9]{2}))
    | (?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})
    | (?P<number>[+-]?[0-9]+(?:\.[0-9]+)?)
    | (?P<name>[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)*)
    | (?P<op><=|>=|!=|<>|=|<|>)
    | (?P<punct>[(),])
    """,
    re.VERBOSE | re.DOTALL,
)
_RESERVED = frozenset(
    {"AND", "ASC", "DESC", "EXCLUDES", "FIRST", "FROM", "GROUP", "HAVING", "IN", "INCLUDES"}
    | {"LAST", "LIKE", "LIMIT", "NOT", "NULL", "NULLS", "OR", "SELECT", "WHERE", "WITH"}
)
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.DOTALL)
_LIKE_PIECE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)|([%_])|([^\\%_]+)", re.DOTALL)
_CONSTANTS: dict[str, Value] = {"TRUE": True, "FALSE": False, "NULL": None}
_T = TypeVar("_T")


@dataclass(frozen=True)
class _Token:
    kind: str  # string | datetime | date | number | name | op | punct | eof
    text: str
    pos: int

    @property
    def word(self) -> str:
        """The token as a keyword would read it (names only)."""
        return self.text.upper() if self.kind == "name" else ""


def parse(soql: str) -> Query:
    """Parse one SOQL SELECT; raises SoqlError("MALFORMED_QUERY") on anything it cannot read."""
    return _Parser(soql).query()


def _tokens(text: str) -> list[_Token]:
    """The tokens of ``text`` without whitespace, ending with an ``eof`` token."""
    tokens, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.lastgroup == "unterminated":
            detail = (
                f"no viable alternative at character '{text[pos]}'"
                if match is None
                else "mismatched character '<EOF>' expecting '''"
            )
            raise SoqlError.at("MALFORMED_QUERY", detail, text, pos)
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append(_Token(kind, match.group(), pos))
        pos = match.end()
    return [*tokens, _Token("eof", "", len(text))]


def _unescape(code: str, *, like: bool) -> str | None:
    """The character an escape stands for (``code`` follows the backslash); None if illegal."""
    if len(code) == 5:
        return chr(int(code[1:], 16))
    if like and code in "%_":
        return code
    return _ESCAPES.get(code.lower() if code.isalpha() else code)


class _Parser:
    """Reads one query; each method consumes one grammar rule."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.at = 0

    def query(self) -> Query:
        """query := SELECT fields FROM name [WHERE] [ORDER BY] [LIMIT n] [OFFSET n] EOF"""
        self._expect("SELECT")
        count_only = self._count()
        fields = () if count_only else tuple(self._comma_list(self._field))
        self._expect("FROM")
        source = self._name()
        where = self._condition() if self._accept("WHERE") else None
        order_by = self._order_by() if self._accept("ORDER") else ()
        limit = self._count_clause("LIMIT")
        offset = self._count_clause("OFFSET")
        if offset is not None and offset > MAX_OFFSET:
            detail = f"Maximum SOQL offset allowed is {MAX_OFFSET}"
            raise SoqlError("NUMBER_OUTSIDE_VALID_RANGE", detail)
        self._expect_kind("eof")
        return Query(
            object=source.text,
            fields=fields,
            where=where,
            order_by=order_by,
            limit=limit,
            offset=offset,
            count_only=count_only,
            object_pos=source.pos,
            text=self.text,
        )

    def _count(self) -> bool:
        """``COUNT()`` in place of the field list."""
        if self._peek().word != "COUNT" or self._peek(1).text != "(":
            return False
        self.at += 2
        self._expect_kind("punct", ")")
        return True

    def _field(self) -> FieldRef:
        token = self._name()
        return FieldRef(tuple(token.text.split(".")), token.pos)

    def _name(self) -> _Token:
        """A (dotted) name that is not a reserved word."""
        token = self._peek()
        if token.kind != "name" or token.word in _RESERVED:
            raise self._unexpected(token)
        self.at += 1
        return token

    def _condition(self) -> Condition:
        """One or more conditions joined by a single kind of operator: all AND or all OR."""
        operands = [self._unary()]
        joiner = self._peek().word if self._peek().word in ("AND", "OR") else None
        while joiner and self._accept(joiner):
            operands.append(self._unary())
        if joiner and self._peek().word in ("AND", "OR"):
            raise self._unexpected(self._peek())  # mixing AND and OR needs parentheses
        if joiner is None:
            return operands[0]
        return And(tuple(operands)) if joiner == "AND" else Or(tuple(operands))

    def _unary(self) -> Condition:
        """NOT unary | ( condition ) | comparison"""
        if self._accept("NOT"):
            return Not(self._unary())
        if self._accept_punct("("):
            inner = self._condition()
            self._expect_kind("punct", ")")
            return inner
        return self._comparison()

    def _comparison(self) -> Comparison:
        field = self._field()
        token = self._next()
        if token.kind == "op":
            op = "!=" if token.text == "<>" else token.text
            return Comparison(field, op, self._value(), token.pos)
        if token.word == "LIKE":
            return Comparison(field, "LIKE", self._pattern(), token.pos)
        if token.word == "NOT":
            self._expect("IN")
            return Comparison(field, "NOT IN", self._value_list(), token.pos)
        if token.word == "IN":
            return Comparison(field, "IN", self._value_list(), token.pos)
        raise self._unexpected(token)

    def _value_list(self) -> tuple[Value, ...]:
        self._expect_kind("punct", "(")
        values = self._comma_list(self._value)
        self._expect_kind("punct", ")")
        return tuple(values)

    def _pattern(self) -> Value | Like:
        """LIKE's operand: a string reads as a pattern; anything else is left to the type check."""
        if self._peek().kind != "string":
            return self._value()
        token = self._next()
        return self._like(token.text[1:-1], token.pos)

    def _value(self) -> Value:
        """A literal: 'string', number, date, datetime, true, false or null."""
        token = self._next()
        if token.kind == "string":
            return self._string(token.text[1:-1], token.pos)
        if token.kind in ("date", "datetime", "number"):
            return self._scalar(token)
        if token.word in _CONSTANTS:
            return _CONSTANTS[token.word]
        raise self._unexpected(token)

    def _scalar(self, token: _Token) -> Value:
        try:
            if token.kind == "datetime":
                return datetime.fromisoformat(token.text).astimezone(UTC)
            if token.kind == "date":
                return date.fromisoformat(token.text)
        except ValueError:
            raise SoqlError.at(
                "MALFORMED_QUERY", f"invalid date: {token.text}", self.text, token.pos
            ) from None
        return float(token.text) if "." in token.text else int(token.text)

    def _string(self, body: str, pos: int) -> str:
        """A quoted string's value; ``\\%`` and ``\\_`` are legal only in LIKE."""

        def replace(match: re.Match[str]) -> str:
            return self._escape(match.group(1), body, pos, like=False)

        return _ESCAPE.sub(replace, body)

    def _like(self, body: str, pos: int) -> Like:
        """A LIKE pattern: unescaped ``%`` and ``_`` are wildcards, everything else is text."""
        parts: list[str | Wildcard] = []
        for match in _LIKE_PIECE.finditer(body):
            escaped, wildcard, text = match.groups()
            if wildcard:
                parts.append(Wildcard(wildcard))
                continue
            piece = text if text is not None else self._escape(escaped, body, pos, like=True)
            if parts and isinstance(parts[-1], str):
                parts[-1] += piece
            else:
                parts.append(piece)
        return Like(tuple(parts))

    def _escape(self, code: str, body: str, pos: int, *, like: bool) -> str:
        char = _unescape(code, like=like)
        if char is None:
            detail = (
                f"Invalid string literal '{body}'. "
                f"Illegal character sequence '\\{code}' in string literal."
            )
            raise SoqlError.at("MALFORMED_QUERY", detail, self.text, pos)
        return char

    def _order_by(self) -> tuple[OrderKey, ...]:
        self._expect("BY")
        return tuple(self._comma_list(self._order_key))

    def _order_key(self) -> OrderKey:
        """field [ASC|DESC] [NULLS FIRST|LAST]"""
        field = self._field()
        descending = self._accept("DESC")
        if not descending:
            self._accept("ASC")
        nulls_last = False
        if self._accept("NULLS"):
            nulls_last = self._accept("LAST")
            if not nulls_last:
                self._expect("FIRST")
        return OrderKey(field, descending, nulls_last)

    def _count_clause(self, keyword: str) -> int | None:
        """``LIMIT n`` or ``OFFSET n``: a non-negative integer, when present."""
        if not self._accept(keyword):
            return None
        token = self._next()
        if token.kind != "number" or not token.text.isdigit():
            raise self._unexpected(token)
        return int(token.text)

    def _comma_list(self, item: Callable[[], _T]) -> list[_T]:
        """``item (, item)*``"""
        items = [item()]
        while self._accept_punct(","):
            items.append(item())
        return items

    def _next(self) -> _Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def _peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.at + ahead, len(self.tokens) - 1)]

    def _accept(self, keyword: str) -> bool:
        if self._peek().word != keyword:
            return False
        self.at += 1
        return True

    def _accept_punct(self, char: str) -> bool:
        if self._peek().text != char or self._peek().kind != "punct":
            return False
        self.at += 1
        return True

    def _expect(self, keyword: str) -> None:
        if not self._accept(keyword):
            raise self._unexpected(self._peek())

    def _expect_kind(self, kind: str, text: str | None = None) -> None:
        token = self._peek()
        if token.kind != kind or (text is not None and token.text != text):
            raise self._unexpected(token)
        self.at += 1

    def _unexpected(self, token: _Token) -> SoqlError:
        shown = "<EOF>" if token.kind == "eof" else f"'{token.text}'"
        return SoqlError.at("MALFORMED_QUERY", f"unexpected token: {shown}", self.text, token.pos)
