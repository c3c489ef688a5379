"""Stored procedures in Snowflake Scripting, as far as the setup's procedures use the language.

``CREATE PROCEDURE ... LANGUAGE SQL ... AS $$ <block> $$`` is parsed when it is created (a body
outside the subset fails the CREATE, as a compilation error would) and ``CALL`` interprets it:
a block (``DECLARE`` variables with a type and an optional ``DEFAULT``, ``BEGIN ... END``, an
``EXCEPTION WHEN OTHER THEN`` handler with ``SQLCODE``, ``SQLERRM`` and ``SQLSTATE``), the
counter ``FOR ... IN <a> TO <b> DO ... END FOR``, assignment ``:=``, ``RETURN``, and SQL
statements, which run through the emulator like any client's, with ``:variable`` bound.
Expressions are read by sqlglot's Snowflake dialect and evaluated here over JSON-like values:
literals, variables, ``+ - *``, casts, ``ARRAY_CONSTRUCT``, ``ARRAY_APPEND``, ``ARRAY_SIZE``,
``GET``, ``OBJECT_CONSTRUCT`` (which drops NULL values, as Snowflake's does) and ``PARSE_JSON``.

Anything else (IF, loops other than the counter FOR, LET, cursors, RESULTSETs, RAISE, other
handlers, other functions) is refused with a compilation error naming it: a procedure the local
stack accepted must not behave differently on a real account because the emulator guessed.
"""

from __future__ import annotations

import json
import re
from collections import ChainMap
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import snowflake.connector.errors
from sqlglot import exp, parse_one

from .catalog import sql_string, syntax_error

Values = MutableMapping[str, Any]
RunSql = Callable[[str], None]

_TOKEN = re.compile(
    r"""(?P<space>\s+|--[^\n]*|/\*.*?\*/)
      | (?P<string>'(?:[^'\\]|''|\\.)*')
      | (?P<quoted>"(?:[^"]|"")*")
      | (?P<op>:=|::)
      | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
      | (?P<number>\d+(?:\.\d+)?)
      | (?P<punct>.)""",
    re.S | re.X,
)
# Statements of the language the subset does not interpret: refused by name.
_UNSUPPORTED = frozenset(
    {"IF", "WHILE", "REPEAT", "LOOP", "CASE", "LET", "RAISE", "BREAK", "CONTINUE", "OPEN", "FETCH"}
    | {"CLOSE", "ASYNC", "AWAIT", "CANCEL", "EXIT", "RETURN_TABLE"}
)


def unsupported(what: str) -> snowflake.connector.errors.ProgrammingError:
    return syntax_error(f"{what} is not in the local emulator's Snowflake Scripting subset")


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    start: int
    end: int

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "word" else self.text


# --- the program -------------------------------------------------------------------------------
@dataclass
class Sql:
    text: str  # a SQL statement, ``:variable`` references still in it


@dataclass
class Assign:
    name: str
    expression: str


@dataclass
class Return:
    expression: str


@dataclass
class For:
    name: str
    start: str
    end: str
    body: list[Statement]


@dataclass
class Block:
    declarations: list[tuple[str, str, str | None]] = field(default_factory=list)  # name, type, default
    body: list[Statement] = field(default_factory=list)
    handler: list[Statement] | None = None  # EXCEPTION WHEN OTHER THEN ...


Statement = Sql | Assign | Return | For | Block


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = [
            _Token(m.lastgroup or "", m.group(), m.start(), m.end())
            for m in _TOKEN.finditer(text)
            if m.lastgroup != "space"
        ]
        self.at = 0

    def peek(self, offset: int = 0) -> _Token | None:
        index = self.at + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def next(self) -> _Token:
        token = self.peek()
        if token is None:
            raise syntax_error("unexpected end of the procedure body")
        self.at += 1
        return token

    def expect(self, *words: str) -> None:
        for word in words:
            token = self.next()
            if token.upper != word:
                raise syntax_error(f"expected {word} at position {token.start}, found {token.text!r}")

    def is_word(self, *words: str) -> bool:
        token = self.peek()
        return token is not None and token.upper in words

    def until(self, *stops: str) -> str:
        """Source text up to (not including) the first of ``stops`` outside parentheses."""
        depth, begin = 0, self.peek()
        if begin is None:
            raise syntax_error("unexpected end of the procedure body")
        while (token := self.peek()) is not None:
            if depth == 0 and token.upper in stops:
                return self.text[begin.start : token.start].strip()
            depth += {"(": 1, ")": -1}.get(token.text, 0)
            self.at += 1
        raise syntax_error(f"expected {' or '.join(stops)} before the end of the procedure body")

    def program(self) -> Block:
        block = self.block()
        if self.is_word(";"):
            self.next()
        if (extra := self.peek()) is not None:
            raise syntax_error(f"unexpected {extra.text!r} after the procedure's block")
        return block

    def block(self) -> Block:
        block = Block()
        if self.is_word("DECLARE"):
            self.next()
            while not self.is_word("BEGIN"):
                name = self.next()
                if name.kind != "word" or name.upper in ("CURSOR", "RESULTSET", "EXCEPTION"):
                    raise unsupported(f"the declaration {name.text!r}")
                kind = self.until("DEFAULT", ":=", ";")
                if not kind or kind.split()[0].upper() in ("CURSOR", "RESULTSET", "EXCEPTION"):
                    raise unsupported(f"a declaration of type {kind or '(none)'!r}")
                default = None
                if self.is_word("DEFAULT", ":="):
                    self.next()
                    default = self.until(";")
                self.expect(";")
                block.declarations.append((name.upper, kind, default))
        self.expect("BEGIN")
        block.body = self.statements("EXCEPTION", "END")
        if self.is_word("EXCEPTION"):
            self.next()
            self.expect("WHEN")
            if not self.is_word("OTHER"):
                handled = self.peek()
                raise unsupported(f"the exception handler WHEN {handled.text if handled else ''}")
            self.expect("OTHER", "THEN")
            block.handler = self.statements("END", "WHEN")
            if self.is_word("WHEN"):
                raise unsupported("a second exception handler")
        self.expect("END")
        return block

    def statements(self, *stops: str) -> list[Statement]:
        found: list[Statement] = []
        while not self.is_word(*stops):
            found.append(self.statement())
        return found

    def statement(self) -> Statement:
        token = self.peek()
        assert token is not None
        word = token.upper
        following = self.peek(1)
        statement: Statement
        if word in ("DECLARE", "BEGIN"):
            statement = self.block()
        elif word == "FOR":
            statement = self.counter_loop()
        elif word == "RETURN":
            self.next()
            statement = Return(self.until(";"))
        elif token.kind == "word" and following is not None and following.text == ":=":
            self.at += 2
            statement = Assign(token.upper, self.until(";"))
        elif word in _UNSUPPORTED:
            raise unsupported(f"the statement {word}")
        elif word == "EXECUTE" and following is not None and following.upper == "IMMEDIATE":
            raise unsupported("EXECUTE IMMEDIATE")
        else:
            statement = Sql(self.until(";"))
        self.expect(";")
        return statement

    def counter_loop(self) -> For:
        self.expect("FOR")
        name = self.next()
        self.expect("IN")
        if self.is_word("REVERSE"):
            raise unsupported("FOR ... IN REVERSE")
        start = self.until("TO")
        if not start or start.upper().startswith("SELECT") or self.peek() is None:
            raise unsupported("a FOR loop over a cursor or a RESULTSET")
        self.expect("TO")
        end = self.until("DO")
        self.expect("DO")
        body = self.statements("END")
        self.expect("END", "FOR")
        return For(name.upper, start, end, body)


def parse_body(body: str) -> Block:
    """The procedure's block; a compilation error for anything outside the subset."""
    block = _Parser(body).program()
    _check_block(block)
    return block


# The expression nodes ``evaluate`` interprets (sqlglot's names for them).
_EXPRESSIONS = (
    exp.Null,
    exp.Boolean,
    exp.Literal,
    exp.Column,
    exp.Identifier,
    exp.Paren,
    exp.Neg,
    exp.Add,
    exp.Sub,
    exp.Mul,
    exp.Cast,
    exp.DataType,
    exp.Array,
    exp.ArrayAppend,
    exp.ArraySize,
    exp.GetExtract,
    exp.Struct,
    exp.PropertyEQ,
    exp.ParseJSON,
)


def _check_expression(text: str) -> None:
    """Refuse, when the procedure is created, an expression ``evaluate`` could not run."""
    for node in parse_one(f"SELECT {text}", read="snowflake").expressions[0].walk():
        if not isinstance(node, _EXPRESSIONS) or (isinstance(node, exp.Column) and node.table):
            raise unsupported(f"the expression {node.sql('snowflake')!r}")


def _check_block(block: Block) -> None:
    for _, _, default in block.declarations:
        if default is not None:
            _check_expression(default)
    for statement in [*block.body, *(block.handler or [])]:
        match statement:
            case Block():
                _check_block(statement)
            case Assign() | Return():
                _check_expression(statement.expression)
            case For():
                _check_expression(statement.start)
                _check_expression(statement.end)
                _check_block(Block(body=statement.body))


# --- expressions -------------------------------------------------------------------------------
def evaluate(text: str, values: Values) -> Any:
    """A Snowflake Scripting expression's value, JSON-like (None, bool, int, float, str, list, dict)."""
    return _value(parse_one(f"SELECT {text}", read="snowflake").expressions[0], values)


def _value(node: exp.Expr, values: Values) -> Any:
    match node:
        case exp.Null():
            return None
        case exp.Boolean():
            return bool(node.this)
        case exp.Literal() if node.is_string:
            return node.this
        case exp.Literal():
            number = float(node.this)
            return int(number) if number.is_integer() and "." not in node.this else number
        case exp.Column() if not node.table:
            name = node.name.upper() if not node.this.quoted else node.name
            if name not in values:
                raise syntax_error(f"invalid identifier '{node.name}'")
            return values[name]
        case exp.Paren():
            return _value(node.this, values)
        case exp.Neg():
            return -_value(node.this, values)
        case exp.Add() | exp.Sub() | exp.Mul():
            left, right = _value(node.this, values), _value(node.expression, values)
            if left is None or right is None:
                return None
            if isinstance(node, exp.Add):
                return left + right
            return left - right if isinstance(node, exp.Sub) else left * right
        case exp.Cast():
            return _cast(_value(node.this, values), node.to.this.name if node.to.this else str(node.to))
        case exp.Array():
            return [_value(e, values) for e in node.expressions]
        case exp.ArrayAppend():
            array = _value(node.this, values)
            return (
                None if array is None else [*_array(array, "ARRAY_APPEND"), _value(node.expression, values)]
            )
        case exp.ArraySize():
            array = _value(node.this, values)
            return None if array is None else len(_array(array, "ARRAY_SIZE"))
        case exp.GetExtract():
            container, index = _value(node.this, values), _value(node.expression, values)
            if isinstance(container, list) and isinstance(index, int):
                return container[index] if 0 <= index < len(container) else None
            if isinstance(container, dict) and isinstance(index, str):
                return container.get(index)
            return None
        case exp.Struct():
            built: dict[str, Any] = {}
            for pair in node.expressions:
                if not isinstance(pair, exp.PropertyEQ):
                    raise unsupported("OBJECT_CONSTRUCT(*)")
                key, item = _value(pair.this, values), _value(pair.expression, values)
                if item is not None:  # Snowflake's OBJECT_CONSTRUCT leaves out NULL values
                    built[str(key)] = item
            return built
        case exp.ParseJSON():
            text = _value(node.this, values)
            return None if text is None else json.loads(text)
    raise unsupported(f"the expression {node.sql('snowflake')!r}")


def _array(value: Any, function: str) -> list[Any]:
    if not isinstance(value, list):
        raise sql_type_error(f"{function} expects an ARRAY, got {json.dumps(value)[:80]}")
    return value


def sql_type_error(detail: str) -> snowflake.connector.errors.ProgrammingError:
    return snowflake.connector.errors.ProgrammingError(msg=detail, errno=1044, sqlstate="42P13")


def _cast(value: Any, kind: str) -> Any:
    kind = kind.upper()
    if value is None or kind in ("VARIANT", "OBJECT"):
        return value
    if kind in ("VARCHAR", "TEXT", "STRING", "CHAR"):
        return value if isinstance(value, str) else json.dumps(value)
    if kind in ("INT", "INTEGER", "BIGINT", "NUMBER", "DECIMAL", "NUMERIC"):
        return int(value)
    if kind == "ARRAY":
        return value if isinstance(value, list) else [value]
    if kind == "BOOLEAN":
        return bool(value)
    raise unsupported(f"a cast to {kind}")


# --- running it --------------------------------------------------------------------------------
class _Returned(Exception):
    def __init__(self, value: Any) -> None:
        super().__init__()
        self.value = value


def _bound(statement: str, values: Values) -> str:
    """``statement`` with each ``:variable`` replaced by its value as a literal (string literals
    and quoted identifiers are left alone: the tokenizer reads them whole)."""
    tokens = list(_TOKEN.finditer(statement))
    out: list[str] = []
    skip = False
    for index, token in enumerate(tokens):
        if skip:
            skip = False
            continue
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        if token.group() == ":" and following is not None and following.lastgroup == "word":
            out.append(_literal(following.group(), values))
            skip = True
        else:
            out.append(token.group())
    return "".join(out)


def _literal(name: str, values: Values) -> str:
    if name.upper() not in values:
        raise syntax_error(f"invalid identifier ':{name}'")
    value = values[name.upper()]
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return sql_string(value)
    return f"PARSE_JSON({sql_string(json.dumps(value))})"


def run(block: Block, arguments: dict[str, Any], run_sql: RunSql) -> Any:
    """CALL: the block run with its arguments; the RETURN value (None without one)."""
    try:
        _run_block(block, ChainMap({}, dict(arguments)), run_sql)
    except _Returned as returned:
        return returned.value
    return None


def _run_block(block: Block, outer: ChainMap[str, Any], run_sql: RunSql) -> None:
    scope = outer.new_child()
    for name, _, default in block.declarations:
        scope.maps[0][name] = evaluate(default, scope) if default is not None else None
    try:
        _run_all(block.body, scope, run_sql)
    except snowflake.connector.errors.Error as exc:
        if block.handler is None:
            raise
        handler = scope.new_child(
            {
                "SQLCODE": exc.errno if isinstance(exc.errno, int) and exc.errno > 0 else -1,
                # The server's message, without the connector's "<code> (<state>): " prefix.
                "SQLERRM": getattr(exc, "raw_msg", None) or exc.msg or str(exc),
                "SQLSTATE": exc.sqlstate,
            }
        )
        _run_all(block.handler, handler, run_sql)


def _run_all(statements: list[Statement], scope: ChainMap[str, Any], run_sql: RunSql) -> None:
    for statement in statements:
        match statement:
            case Block():
                _run_block(statement, scope, run_sql)
            case Assign():
                value = evaluate(statement.expression, scope)
                for values in scope.maps:
                    if statement.name in values:
                        values[statement.name] = value
                        break
                else:
                    raise syntax_error(f"invalid identifier '{statement.name}' (not declared)")
            case Return():
                raise _Returned(evaluate(statement.expression, scope))
            case For():
                start, end = evaluate(statement.start, scope), evaluate(statement.end, scope)
                for counter in range(int(start), int(end) + 1):
                    _run_all(statement.body, scope.new_child({statement.name: counter}), run_sql)
            case Sql():
                run_sql(_bound(statement.text, scope))
