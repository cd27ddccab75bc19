"""Filter text -> tokens: words, quoted strings (with their escapes),
operators and parentheses, each with its position for error messages."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Final

from mnemo_server.filters.ast import error_at


class Kind(enum.Enum):
    LPAREN = "'('"
    RPAREN = "')'"
    OP = "an operator"
    MINUS = "'-'"
    STAR = "'*'"
    STRING = "a quoted string"
    WORD = "a word"
    EOF = "the end of the filter"


@dataclass(frozen=True, slots=True)
class Token:
    kind: Kind
    text: str  # decoded content for STRING, source text otherwise
    pos: int
    end: int


# Characters that end a bare word. Everything else (letters, digits, '.', '-',
# '_', '@', non-ASCII ...) may appear inside one, so ids like run-42 and
# numbers like -1.5e3 need no quotes.
_WORD_BREAK: Final = frozenset("()\"'<>=!:*")
_ESCAPES: Final = {
    "\\": "\\",
    '"': '"',
    "'": "'",
    "/": "/",
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "b": "\b",
    "f": "\f",
}
KEYWORDS: Final = frozenset({"AND", "OR", "NOT"})
_NUMBER_START_RE: Final = re.compile(r"[0-9]|\.[0-9]")


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "()":
            tokens.append(Token(Kind.LPAREN if ch == "(" else Kind.RPAREN, ch, i, i + 1))
            i += 1
        elif ch in "<>":
            op = text[i : i + 2] if text[i + 1 : i + 2] == "=" else ch
            tokens.append(Token(Kind.OP, op, i, i + len(op)))
            i += len(op)
        elif ch == "!":
            if text[i + 1 : i + 2] != "=":
                raise error_at(i, "'!' must be followed by '=' (negate with NOT or '-')")
            tokens.append(Token(Kind.OP, "!=", i, i + 2))
            i += 2
        elif ch in "=:":
            tokens.append(Token(Kind.OP, ch, i, i + 1))
            i += 1
        elif ch == "*":
            tokens.append(Token(Kind.STAR, ch, i, i + 1))
            i += 1
        elif ch in "\"'":
            value, end = read_string(text, i)
            tokens.append(Token(Kind.STRING, value, i, end))
            i = end
        elif ch == "-" and not _NUMBER_START_RE.match(text, i + 1):
            # A '-' that does not start a number negates what follows.
            tokens.append(Token(Kind.MINUS, ch, i, i + 1))
            i += 1
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] not in _WORD_BREAK:
                i += 1
            tokens.append(Token(Kind.WORD, text[start:i], start, i))
    tokens.append(Token(Kind.EOF, "", n, n))
    return tokens


def read_string(text: str, start: int) -> tuple[str, int]:
    quote = text[start]
    out: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == quote:
            return "".join(out), i + 1
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        esc = text[i + 1 : i + 2]
        if esc in _ESCAPES:
            out.append(_ESCAPES[esc])
            i += 2
        elif esc in ("u", "U"):
            width = 4 if esc == "u" else 8
            digits = text[i + 2 : i + 2 + width]
            if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise error_at(i, f"'\\{esc}' must be followed by {width} hex digits")
            code = int(digits, 16)
            i += 2 + width
            if 0xD800 <= code <= 0xDBFF and text[i : i + 2] == "\\u":
                low_digits = text[i + 2 : i + 6]
                if len(low_digits) == 4 and all(c in "0123456789abcdefABCDEF" for c in low_digits):
                    low = int(low_digits, 16)
                    if 0xDC00 <= low <= 0xDFFF:
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        i += 6
            if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
                raise error_at(i - 2 - width, "escape is not a valid Unicode character")
            out.append(chr(code))
        else:
            raise error_at(i, f"unknown escape '\\{esc}' in string")
    raise error_at(start, "unterminated string")
