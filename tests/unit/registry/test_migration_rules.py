"""Migrations expand, then contract (docs/migrations.md): a revision's `upgrade()` only adds, so the
previous release keeps working on the new schema during a rolling update and after a rollback.

Checked on the source of every revision: no drop, rename or column change, and a column added to an
existing table is nullable or has a server default. A revision that contracts (drops what no running
release uses any more) says so with a module-level `contracts = "<why it is safe now>"`.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from services.registry.db import MIGRATIONS

VERSIONS = sorted((Path(MIGRATIONS) / "versions").glob("[0-9]*.py"))
CONTRACTING_OPS = {"drop_table", "drop_column", "drop_constraint", "rename_table", "alter_column"}
# The same in raw SQL (`op.execute`), e.g. a DROP COLUMN written by hand to keep SQLite's AUTOINCREMENT.
CONTRACTING_SQL = re.compile(r"\b(DROP\s+(COLUMN|TABLE|CONSTRAINT)|RENAME|ALTER\s+COLUMN)\b", re.IGNORECASE)


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def problems_of(source: str) -> list[str]:
    """What in a revision's upgrade() could break the previous release (empty when it contracts
    on purpose)."""
    module = ast.parse(source)
    if any(
        isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "contracts" for t in node.targets)
        for node in module.body
    ):
        return []
    upgrade = next(n for n in module.body if isinstance(n, ast.FunctionDef) and n.name == "upgrade")
    found = []
    for node in ast.walk(upgrade):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        if node.func.attr in CONTRACTING_OPS:
            found.append(f"line {node.lineno}: op.{node.func.attr}")
        if node.func.attr == "execute" and any(
            isinstance(part, ast.Constant)
            and isinstance(part.value, str)
            and CONTRACTING_SQL.search(part.value)
            for arg in node.args
            for part in ast.walk(arg)
        ):
            found.append(f"line {node.lineno}: contracting SQL in op.execute")
        if node.func.attr == "add_column" and len(node.args) >= 2 and isinstance(node.args[1], ast.Call):
            column = node.args[1]
            nullable = _keyword(column, "nullable")
            not_null = isinstance(nullable, ast.Constant) and nullable.value is False
            if not_null and _keyword(column, "server_default") is None:
                found.append(f"line {node.lineno}: a NOT NULL column without a server default")
    return found


def test_the_revisions_are_found() -> None:
    assert len(VERSIONS) >= 3


def test_every_revision_only_expands_unless_it_says_it_contracts() -> None:
    found = {path.name: problems_of(path.read_text(encoding="utf-8")) for path in VERSIONS}
    assert not {name: problems for name, problems in found.items() if problems}


def test_a_contracting_revision_is_caught() -> None:
    dropping = "def upgrade() -> None:\n    op.drop_column('zq_tasks', 'old')\n"
    assert problems_of(dropping) == ["line 2: op.drop_column"]
    not_null = (
        "def upgrade() -> None:\n"
        "    op.add_column('zq_tasks', sa.Column('x', sa.Integer(), nullable=False))\n"
    )
    assert problems_of(not_null) == ["line 2: a NOT NULL column without a server default"]
    defaulted = (
        "def upgrade() -> None:\n"
        "    op.add_column('zq_tasks', sa.Column('x', sa.Integer(), nullable=False, server_default='0'))\n"
    )
    assert problems_of(defaulted) == []
    assert problems_of('contracts = "0007 stopped reading it"\n' + dropping) == []


def test_a_contracting_statement_in_raw_sql_is_caught() -> None:
    dropping = (
        "def upgrade() -> None:\n"
        "    for column in ('failed_attempts', 'locked_until'):\n"
        "        op.execute(f'ALTER TABLE zq_task_users DROP COLUMN {column}')\n"
    )
    assert problems_of(dropping) == ["line 3: contracting SQL in op.execute"]
    assert problems_of("def upgrade() -> None:\n    op.execute('CREATE INDEX ix ON t (c)')\n") == []
