"""The one error a SOQL query can raise, shaped like Salesforce's own.

    Exception
    └── SoqlError    a query Salesforce would refuse: ``error_code`` and ``message`` as it sends
                     them, so the server can answer HTTP 400 ``[{"message", "errorCode"}]``

Error codes used: MALFORMED_QUERY (syntax), INVALID_TYPE (unknown object), INVALID_FIELD
(unknown field or relationship, or a value of the wrong type), INVALID_QUERY_FILTER_OPERATOR
(an operator the field's type does not allow) and NUMBER_OUTSIDE_VALID_RANGE (OFFSET > 2000).
A schema that contradicts itself is a programming error and raises ValueError instead.
"""

from __future__ import annotations

__all__ = ["SoqlError"]


class SoqlError(Exception):
    """A query Salesforce would refuse, with its error code and message."""

    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message

    @classmethod
    def at(cls, error_code: str, detail: str, text: str, pos: int | None) -> SoqlError:
        """An error pointing at offset ``pos`` of the query ``text``, as Salesforce words it."""
        if pos is None or not text:
            return cls(error_code, detail)
        row = text.count("\n", 0, pos) + 1
        start = text.rfind("\n", 0, pos) + 1
        end = text.find("\n", pos)
        line = text[start : len(text) if end < 0 else end]
        column = pos - start + 1
        caret = " " * (column - 1) + "^"
        return cls(error_code, f"\n{line}\n{caret}\nERROR at Row:{row}:Column:{column}\n{detail}")
