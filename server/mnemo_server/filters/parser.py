"""Tokens -> Expr: recursive descent over the AIP-160 grammar, checking
fields, operators, values and the size limits; `parse_filter` is the entry."""

from __future__ import annotations

from typing import Final

from mnemo_server import errors
from mnemo_server.filters.ast import (
    ANY,
    FIELDS,
    MAX_COMPARISONS,
    MAX_DEPTH,
    MAX_FILTER_BYTES,
    ORDERING_OPS,
    STRING_FIELDS,
    And,
    Comparison,
    Expr,
    Literal,
    Not,
    Or,
    error_at,
)
from mnemo_server.filters.lexer import KEYWORDS, Kind, Token, tokenize
from mnemo_server.filters.literals import bare_literal, check_key, metadata_field, parse_time
from mnemo_server.models import MemoryKind

_EQUALITY_OPS: Final = ("=", "!=", ":")


class _Parser:
    """Recursive descent over the AIP-160 grammar (docs/filters.md):

    expression = factor { ["AND"] factor }      (juxtaposition is AND)
    factor     = term { "OR" term }             (OR binds tighter than AND)
    term       = ("NOT" | "-") term | simple
    simple     = "(" expression ")" | field comparator value
    """

    def __init__(self, text: str) -> None:
        self._tokens = tokenize(text)
        self._i = 0
        self._depth = 0
        self._comparisons = 0

    def parse(self) -> Expr:
        expr = self._expression()
        tok = self._peek()
        if tok.kind is not Kind.EOF:
            raise error_at(tok.pos, f"unexpected {self._describe(tok)}")
        return expr

    # -- helpers

    def _peek(self) -> Token:
        return self._tokens[self._i]

    def _next(self) -> Token:
        tok = self._tokens[self._i]
        if tok.kind is not Kind.EOF:
            self._i += 1
        return tok

    def _is_keyword(self, tok: Token, word: str) -> bool:
        return tok.kind is Kind.WORD and tok.text == word

    @staticmethod
    def _describe(tok: Token) -> str:
        if tok.kind in (Kind.WORD, Kind.OP):
            return f"'{tok.text}'"
        return str(tok.kind.value)

    def _starts_term(self, tok: Token) -> bool:
        if tok.kind in (Kind.LPAREN, Kind.MINUS):
            return True
        return tok.kind is Kind.WORD and tok.text not in ("AND", "OR")

    def _enter(self, pos: int) -> None:
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise error_at(pos, f"filter nests deeper than {MAX_DEPTH} levels")

    # -- grammar

    def _expression(self) -> Expr:
        items = [self._factor()]
        while True:
            tok = self._peek()
            if self._is_keyword(tok, "AND"):
                self._next()
                if not self._starts_term(self._peek()):
                    raise error_at(self._peek().pos, "expected a comparison after AND")
            elif not self._starts_term(tok):
                break
            items.append(self._factor())
        return _and(items)

    def _factor(self) -> Expr:
        items = [self._term()]
        while self._is_keyword(self._peek(), "OR"):
            self._next()
            if not self._starts_term(self._peek()):
                raise error_at(self._peek().pos, "expected a comparison after OR")
            items.append(self._term())
        return _or(items)

    def _term(self) -> Expr:
        tok = self._peek()
        if self._is_keyword(tok, "NOT") or tok.kind is Kind.MINUS:
            self._next()
            self._enter(tok.pos)
            if not self._starts_term(self._peek()):
                raise error_at(self._peek().pos, f"expected a comparison after {self._describe(tok)}")
            item = self._term()
            self._depth -= 1
            return Not(item)
        return self._simple()

    def _simple(self) -> Expr:
        tok = self._peek()
        if tok.kind is Kind.LPAREN:
            self._next()
            self._enter(tok.pos)
            if self._peek().kind is Kind.RPAREN:
                raise error_at(self._peek().pos, "empty parentheses")
            expr = self._expression()
            close = self._next()
            if close.kind is not Kind.RPAREN:
                raise error_at(
                    close.pos,
                    f"expected ')' to close the '(' at position {tok.pos + 1}, found {self._describe(close)}",
                )
            self._depth -= 1
            return expr
        return self._restriction()

    def _restriction(self) -> Comparison:
        field_tok = self._peek()
        field, keys = self._field()
        op_tok = self._next()
        if op_tok.kind is not Kind.OP:
            raise error_at(op_tok.pos, f"expected an operator after {field}, found {self._describe(op_tok)}")
        self._comparisons += 1
        if self._comparisons > MAX_COMPARISONS:
            raise error_at(field_tok.pos, f"filter has more than {MAX_COMPARISONS} comparisons")
        value_tok = self._next()
        value = self._value(field, op_tok.text, value_tok, is_metadata=keys is not None)
        return Comparison(field, op_tok.text, value)

    def _field(self) -> tuple[str, list[str] | None]:
        """A field name; metadata keys may be quoted: metadata."a b".c ."""
        first = self._next()
        if first.kind is not Kind.WORD or first.text in KEYWORDS:
            raise error_at(first.pos, f"expected a field name, found {self._describe(first)}")
        pieces = [first]
        # Adjacent (no space) words and strings form one path: metadata."x".y
        while self._peek().kind in (Kind.WORD, Kind.STRING) and self._peek().pos == pieces[-1].end:
            pieces.append(self._next())
        segments: list[str] = []
        pending_dot = False  # the previous piece ended with '.', a key must follow
        for index, piece in enumerate(pieces):
            if piece.kind is Kind.STRING:
                if not pending_dot:
                    raise error_at(piece.pos, "expected '.' before a quoted key")
                segments.append(piece.text)
                pending_dot = False
                continue
            parts = piece.text.split(".")
            if index > 0:
                if parts[0] != "":
                    raise error_at(piece.pos, "expected '.' after a quoted key")
                parts = parts[1:]
            pending_dot = parts[-1] == ""
            if pending_dot:
                parts = parts[:-1]
            if "" in parts:
                raise error_at(piece.pos, f"empty key in field '{piece.text}'")
            segments.extend(parts)
        if pending_dot:
            raise error_at(pieces[-1].end - 1, "expected a key after '.'")
        head = segments[0]
        if head == "metadata":
            keys = segments[1:]
            if not keys:
                raise error_at(first.pos, "metadata needs a key: metadata.<key>")
            for key in keys:
                check_key(key, first.pos)
            return metadata_field(keys), keys
        if head not in FIELDS:
            raise error_at(
                first.pos,
                f"unknown field '{head}'; expected one of {', '.join(FIELDS)} or metadata.<key>",
            )
        if len(segments) > 1:
            raise error_at(first.pos, f"field '{head}' has no sub-fields")
        return head, None

    def _value(self, field: str, op: str, tok: Token, *, is_metadata: bool) -> Literal:
        if tok.kind is Kind.STAR:
            if op != ":":
                raise error_at(tok.pos, "'*' (presence) is only allowed after ':'")
            return ANY
        if tok.kind not in (Kind.WORD, Kind.STRING) or (tok.kind is Kind.WORD and tok.text in KEYWORDS):
            raise error_at(tok.pos, f"expected a value after {field} {op}, found {self._describe(tok)}")
        quoted = tok.kind is Kind.STRING
        if is_metadata:
            value = tok.text if quoted else bare_literal(tok.text, tok.pos)
            if (value is None or isinstance(value, bool)) and op in ORDERING_OPS:
                raise error_at(tok.pos, f"'{op}' needs a string or a number; {tok.text} has no order")
            return value
        if field in STRING_FIELDS:
            return tok.text
        if field == "tags":
            if op not in ("=", "!=", ":"):
                raise error_at(tok.pos, f"tags supports '=', '!=' and ':', not '{op}'")
            return tok.text
        if field == "kind":
            if op not in _EQUALITY_OPS:
                raise error_at(tok.pos, f"kind supports '=', '!=' and ':', not '{op}'")
            name = tok.text.upper().removeprefix("MEMORY_KIND_")
            if name not in MemoryKind.__members__:
                raise error_at(
                    tok.pos, f"unknown kind '{tok.text}'; expected EPISODIC, SEMANTIC or PROCEDURAL"
                )
            return int(MemoryKind[name])
        if field == "pinned":
            if op not in _EQUALITY_OPS:
                raise error_at(tok.pos, f"pinned supports '=', '!=' and ':', not '{op}'")
            if tok.text.lower() not in ("true", "false"):
                raise error_at(tok.pos, f"pinned compares with true or false, not '{tok.text}'")
            return tok.text.lower() == "true"
        # A time field.
        if field == "expire_time" and not quoted and tok.text.lower() == "null":
            if op not in ("=", "!="):
                raise error_at(tok.pos, f"'{op}' cannot compare with null; use '=' or '!='")
            return None
        return parse_time(tok.text, tok.pos)


def _and(items: list[Expr]) -> Expr:
    flat: list[Expr] = []
    for item in items:
        flat.extend(item.items if isinstance(item, And) else (item,))
    return flat[0] if len(flat) == 1 else And(tuple(flat))


def _or(items: list[Expr]) -> Expr:
    flat: list[Expr] = []
    for item in items:
        flat.extend(item.items if isinstance(item, Or) else (item,))
    return flat[0] if len(flat) == 1 else Or(tuple(flat))


def parse_filter(text: str) -> Expr | None:
    """Parses a filter; None when it is empty or blank.

    Raises:
        errors.InvalidArgumentError: reason INVALID_FILTER, field "filter",
            with a description naming the position of the problem.
    """
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILTER_BYTES:
        raise errors.invalid("INVALID_FILTER", "filter", f"filter is longer than {MAX_FILTER_BYTES} bytes")
    if not text.strip():
        return None
    return _Parser(text).parse()
