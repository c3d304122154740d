"""A small Salesforce formula language for validation rules, compiled to a polars expression.

Supported: field references, text and number literals, TRUE/FALSE/NULL, the functions AND, OR,
NOT, ISPICKVAL, ISBLANK, ISNULL and TEXT, the operators ``&&``, ``||``, ``!``, ``=``, ``==``,
``<>``, ``!=``, ``<``, ``<=``, ``>``, ``>=`` and parentheses. As in Salesforce, a picklist field
may only be read through ISPICKVAL or TEXT. Anything else is refused when the rule is created,
with the formula editor's wording.
https://help.salesforce.com/s/articleView?id=sf.customize_functions.htm&type=5
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from sandbox.salesforce.schema import SObject

__all__ = ["FormulaError", "compile_condition"]

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    | (?P<number>[0-9]+(?:\.[0-9]+)?)
    | (?P<name>[A-Za-z][A-Za-z0-9_]*)
    | (?P<op>&&|\|\||==|!=|<>|<=|>=|[=<>!(),])
    )""",
    re.VERBOSE,
)
_COMPARE: dict[str, Callable[[pl.Expr, pl.Expr], pl.Expr]] = {
    "=": operator.eq,
    "==": operator.eq,
    "!=": operator.ne,
    "<>": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_TYPE_NAMES = {"boolean": "Boolean", "text": "Text", "number": "Number", "picklist": "Picklist"}
_VALUE_TYPES = {"boolean": "boolean", "int": "number", "double": "number", "picklist": "picklist"}


class FormulaError(ValueError):
    """A formula Salesforce would refuse, worded as its formula editor words it."""


@dataclass(frozen=True)
class _Typed:
    """A compiled sub-expression and its formula type (boolean, text, number, picklist, ...)."""

    expr: pl.Expr
    type: str


def compile_condition(formula: str, sobject: SObject) -> pl.Expr:
    """A boolean expression over ``sobject``'s rows, true where the formula is true."""
    parser = _Parser(_tokens(formula), sobject)
    result = parser.expression()
    parser.end()
    if result.type == "picklist":
        raise _picklist_error(parser.last_field)
    if result.type != "boolean":
        raise FormulaError(
            f"Formula result is data type ({_TYPE_NAMES.get(result.type, result.type)}), "
            "incompatible with expected data type (true or false)."
        )
    return result.expr.fill_null(False)


def _tokens(formula: str) -> list[tuple[str, str]]:
    """(kind, text) pairs; a character that starts no token is a syntax error."""
    tokens, position = [], 0
    formula = formula.rstrip()
    while position < len(formula):
        found = _TOKEN.match(formula, position)
        if found is None or found.lastgroup is None:
            raise FormulaError(f"Syntax error. Found '{formula[position:].strip()[:1]}'")
        tokens.append((found.lastgroup, found.group(found.lastgroup)))
        position = found.end()
    return tokens


class _Parser:
    """Recursive descent over the tokens, compiling as it goes."""

    def __init__(self, tokens: list[tuple[str, str]], sobject: SObject) -> None:
        self.tokens = tokens
        self.position = 0
        self.sobject = sobject
        self.last_field = ""
        self._functions: dict[str, Callable[[list[_Typed]], _Typed]] = {
            "AND": lambda args: self._logic("AND", args, pl.all_horizontal),
            "OR": lambda args: self._logic("OR", args, pl.any_horizontal),
            "NOT": self._not,
            "ISPICKVAL": self._ispickval,
            "ISBLANK": lambda args: self._blank("ISBLANK", args),
            "ISNULL": lambda args: self._blank("ISNULL", args),
            "TEXT": self._text,
        }

    def peek(self) -> str | None:
        return self.tokens[self.position][1] if self.position < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        if self.position >= len(self.tokens):
            raise FormulaError("Syntax error. Missing ')'")
        self.position += 1
        return self.tokens[self.position - 1]

    def expect(self, text: str) -> None:
        found = self.peek()
        if found != text:
            raise FormulaError(
                f"Syntax error. Missing '{text}'"
                if found is None
                else f"Syntax error. Found '{found}'"
            )
        self.position += 1

    def end(self) -> None:
        if self.peek() is not None:
            raise FormulaError(f"Syntax error. Extra '{self.peek()}'")

    def expression(self) -> _Typed:
        """expression := and ("||" and)*"""
        left = self._and()
        while self.peek() == "||":
            self.take()
            left = self._logic("||", [left, self._and()], pl.any_horizontal)
        return left

    def _and(self) -> _Typed:
        """and := comparison ("&&" comparison)*"""
        left = self._comparison()
        while self.peek() == "&&":
            self.take()
            left = self._logic("&&", [left, self._comparison()], pl.all_horizontal)
        return left

    def _comparison(self) -> _Typed:
        """comparison := unary (op unary)?; picklists cannot be compared."""
        left = self._unary()
        op = self.peek()
        if op not in _COMPARE:
            return left
        self.take()
        right = self._unary()
        for side in (left, right):
            if side.type == "picklist":
                raise _picklist_error(self.last_field)
        return _Typed(_COMPARE[op](left.expr, right.expr).fill_null(False), "boolean")

    def _unary(self) -> _Typed:
        """unary := "!" unary | primary"""
        if self.peek() == "!":
            self.take()
            return self._not([self._unary()])
        return self._primary()

    def _primary(self) -> _Typed:
        """primary := "(" expression ")" | literal | call | field"""
        kind, text = self.take()
        if text == "(":
            inner = self.expression()
            self.expect(")")
            return inner
        if kind == "string":
            return _Typed(pl.lit(_unquote(text)), "text")
        if kind == "number":
            return _Typed(pl.lit(float(text)), "number")
        if kind != "name":
            raise FormulaError(f"Syntax error. Found '{text}'")
        if self.peek() == "(":
            return self._call(text)
        return self._name(text)

    def _call(self, name: str) -> _Typed:
        """A function call: its arguments, then the function's own type checks."""
        function = self._functions.get(name.upper())
        if function is None:
            raise FormulaError(f"Unknown function {name.upper()}. Check spelling.")
        self.expect("(")
        args: list[_Typed] = []
        if self.peek() != ")":
            args.append(self._argument())
            while self.peek() == ",":
                self.take()
                args.append(self._argument())
        self.expect(")")
        return function(args)

    def _argument(self) -> _Typed:
        """A function argument: picklists are allowed here, the function decides."""
        return self.expression()

    def _name(self, name: str) -> _Typed:
        """TRUE, FALSE, NULL or a field of the object (booleans never null)."""
        constants = {"TRUE": True, "FALSE": False, "NULL": None}
        if name.upper() in constants:
            value = constants[name.upper()]
            return _Typed(pl.lit(value), "boolean" if value is not None else "null")
        field = self.sobject.field(name)
        if field is None:
            raise FormulaError(f"Field {name} does not exist. Check spelling.")
        self.last_field = field.name
        kind = field.kind.soql_kind
        column = pl.col(field.name)
        if kind == "boolean":
            column = column.fill_null(False)
        return _Typed(
            column, _VALUE_TYPES.get(kind, kind if kind in ("date", "datetime") else "text")
        )

    def _logic(
        self, name: str, args: list[_Typed], combine: Callable[[list[pl.Expr]], pl.Expr]
    ) -> _Typed:
        if not args:
            raise FormulaError(
                f"Incorrect number of parameters for function '{name}()'. "
                "Expected 1 or more, received 0"
            )
        for arg in args:
            _require(name, arg, "boolean")
        return _Typed(combine([arg.expr for arg in args]), "boolean")

    def _not(self, args: list[_Typed]) -> _Typed:
        _arity("NOT", args, 1)
        _require("NOT", args[0], "boolean")
        return _Typed(~args[0].expr, "boolean")

    def _ispickval(self, args: list[_Typed]) -> _Typed:
        _arity("ISPICKVAL", args, 2)
        _require("ISPICKVAL", args[0], "picklist")
        _require("ISPICKVAL", args[1], "text")
        return _Typed((args[0].expr == args[1].expr).fill_null(False), "boolean")

    def _blank(self, name: str, args: list[_Typed]) -> _Typed:
        _arity(name, args, 1)
        value = args[0]
        if value.type == "picklist":
            raise _picklist_error(self.last_field)
        blank = value.expr.is_null()
        if value.type == "text":
            blank = blank | (value.expr == "")
        return _Typed(blank.fill_null(True), "boolean")

    def _text(self, args: list[_Typed]) -> _Typed:
        _arity("TEXT", args, 1)
        return _Typed(args[0].expr.cast(pl.String), "text")


def _arity(name: str, args: list[_Typed], expected: int) -> None:
    if len(args) != expected:
        raise FormulaError(
            f"Incorrect number of parameters for function '{name}()'. "
            f"Expected {expected}, received {len(args)}"
        )


def _require(name: str, arg: _Typed, expected: str) -> None:
    if arg.type != expected and arg.type != "null":
        raise FormulaError(
            f"Incorrect parameter type for function '{name}()'. Expected "
            f"{_TYPE_NAMES[expected]}, received {_TYPE_NAMES.get(arg.type, arg.type.title())}"
        )


def _picklist_error(field: str) -> FormulaError:
    return FormulaError(
        f"Field {field} is a picklist field. Picklist fields are only supported in certain "
        "functions."
    )


def _unquote(literal: str) -> str:
    """A string literal's text, backslash escapes resolved."""
    return re.sub(r"\\(.)", r"\1", literal[1:-1])
