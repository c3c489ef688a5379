"""Stored procedures of the emulated account: CREATE / DROP PROCEDURE and CALL.

Only ``LANGUAGE SQL`` (Snowflake Scripting) is accepted; its body is checked when the procedure
is created and interpreted on CALL by ``scripting`` (the subset the setup's procedures use).
Procedures are kept in the registry by their qualified name (overloads by argument types are not
emulated: a second signature replaces the first only with OR REPLACE, else it already exists).

A CALL's SQL statements run through the emulator as a client's would, in the caller's current
database and schema (``EXECUTE AS CALLER``) or the procedure's own (``EXECUTE AS OWNER``); the
emulator has no roles, so the two differ only there. The answer is one row, one column named
after the procedure, holding the returned value as JSON text (a VARIANT, as the connector
returns one).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from sqlglot import exp, parse_one

from . import scripting
from .catalog import QUALIFIED, ObjectName, Registry, already_exists, does_not_exist, syntax_error, utcnow
from .pipes import Session

Execute = Callable[[str, str, str], Any]  # (database, schema, sql)

_CREATE = re.compile(
    r"CREATE\s+(?P<replace>OR\s+REPLACE\s+)?(?:SECURE\s+)?PROCEDURE\s+(?P<if_not_exists>IF\s+NOT\s+EXISTS\s+)?"
    rf"(?P<name>{QUALIFIED})\s*\((?P<parameters>[^)]*)\)(?P<header>.*?)\bAS\s*\$\$(?P<body>.*)\$\$\s*;?\s*$",
    re.I | re.S,
)
_CALL = re.compile(rf"CALL\s+(?P<name>{QUALIFIED})\s*\((?P<arguments>.*)\)\s*;?\s*$", re.I | re.S)


class Procedures:
    def __init__(self, registry: Registry, execute: Execute) -> None:
        self.registry = registry
        self.execute = execute

    def create(self, sql: str, session: Session) -> str:
        match = _CREATE.match(sql.strip())
        if not match:
            raise syntax_error(
                "expected CREATE [OR REPLACE] PROCEDURE <name>(<arguments>) ... AS $$ <body> $$"
            )
        name = ObjectName.resolve(match.group("name"), session.database, session.schema)
        header = " ".join(match.group("header").split()).upper()
        language = re.search(r"\bLANGUAGE\s+(\w+)", header)
        if not language or language.group(1) != "SQL":
            raise scripting.unsupported(f"LANGUAGE {language.group(1) if language else '(none)'}")
        returns = re.search(r"\bRETURNS\s+(\w+)", header)
        if not returns:
            raise syntax_error(f"CREATE PROCEDURE {name.name}: missing RETURNS <type>")
        caller = re.search(r"\bEXECUTE\s+AS\s+(CALLER|OWNER|RESTRICTED\s+CALLER)\b", header)
        parameters = []
        for parameter in filter(None, (p.strip() for p in match.group("parameters").split(","))):
            parts = parameter.split()
            if len(parts) != 2:
                raise scripting.unsupported(f"the argument {parameter!r} (a default, or no type)")
            parameters.append((parts[0].strip('"').upper(), parts[1].upper()))
        scripting.parse_body(match.group("body"))  # a body outside the subset fails the CREATE
        if self.registry.get("procedures", name.fq) and not match.group("replace"):
            if match.group("if_not_exists"):
                return f"{name.name} already exists, statement succeeded."
            raise already_exists(name.name)
        self.registry.put(
            "procedures",
            name.fq,
            {
                "name": name.name,
                "database": name.database,
                "schema": name.schema,
                "parameters": parameters,
                "returns": returns.group(1),
                "execute_as": caller.group(1) if caller else "OWNER",
                "body": match.group("body"),
                "created_on": utcnow().isoformat(),
            },
        )
        return f"Function {name.name} successfully created."

    def drop(self, raw_name: str, session: Session, if_exists: bool) -> str:
        name = ObjectName.resolve(raw_name, session.database, session.schema)
        if self.registry.remove("procedures", name.fq) is None and not if_exists:
            raise does_not_exist("Procedure", name.fq)
        return f"{name.name} successfully dropped."

    def call(self, sql: str, bindings: dict[str, Any] | None, session: Session) -> str:
        """CALL: the SELECT answering with the procedure's return value."""
        from .router import inline_bindings, result_sql

        match = _CALL.match(sql.strip())
        if not match:
            raise syntax_error("expected CALL <procedure>(<arguments>)")
        name = ObjectName.resolve(match.group("name"), session.database, session.schema)
        record = self.registry.get("procedures", name.fq)
        if record is None:
            raise does_not_exist("Procedure", name.fq)
        text = match.group("arguments").strip()
        # Bound values become literals of the argument list (the name holds no placeholder).
        select = inline_bindings(f"SELECT {text}", bindings)
        expressions = parse_one(select, read="snowflake").expressions if text else []
        if len(expressions) != len(record["parameters"]):
            raise syntax_error(
                f"{name.name} takes {len(record['parameters'])} argument(s), "
                f"the CALL passes {len(expressions)}"
            )
        arguments = {
            parameter: _argument(expression, kind)
            for (parameter, kind), expression in zip(record["parameters"], expressions, strict=True)
        }
        if record["execute_as"] == "OWNER":
            database, schema = record["database"], record["schema"]
        else:
            database, schema = session.database or record["database"], session.schema or record["schema"]
        block = scripting.parse_body(record["body"])
        value = scripting.run(block, arguments, lambda statement: self.execute(database, schema, statement))
        return result_sql([record["name"]], [[json.dumps(value) if value is not None else None]])


def _argument(expression: exp.Expr, kind: str) -> Any:
    value = scripting.evaluate(expression.sql("snowflake"), {})
    if kind == "ARRAY" and value is not None and not isinstance(value, list):
        raise scripting.sql_type_error(f"argument of type ARRAY expected, got {json.dumps(value)[:80]}")
    return value
