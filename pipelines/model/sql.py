"""Turns the per-source SELECTs into view definitions for one destination, with sqlglot.

The SELECTs are written once, in the Postgres dialect, against the source's own table names
(unqualified). For one destination this module:
- expands two macros for JSON lists (DuckDB and Postgres spell them differently):
  `JSON_INDEXES(list) AS x(i)` in FROM yields one row per element index (none for null, an
  empty list or a value that is not a list), and `JSON_TEXT(list, i[, 'key'])` is element
  `i` (or its field `key`) as text;
- qualifies each table with the dataset the source was loaded into;
- stands in for what the source has not created yet: a missing column is a typed NULL, a
  missing table an empty typed relation (types from the mapping's `READS`); a SELECT whose
  FROM table is missing contributes nothing;
- wraps each SELECT so every branch has the view's columns, in order, with the view's types,
  plus `source`, and unions the branches (`UNION ALL`: keys never collide across sources);
- renders the result in the destination's dialect (sqlglot: `duckdb`, `postgres`, …).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType

import sqlglot
from sqlglot import exp

from .views import View

READ_DIALECT = "postgres"
# the macros, as templates in the read dialect; {x}, {i}, {key} are replaced by expressions
JSON_INDEXES = ("GENERATE_SERIES(0, CASE WHEN CAST({x} AS TEXT) LIKE '[%' "
                "THEN CAST(JSON_ARRAY_LENGTH(CAST({x} AS JSON)) AS BIGINT) ELSE 0 END - 1)")
JSON_ELEMENT = "CAST({x} AS JSON) ->> CAST({i} AS INT)"
JSON_FIELD = "(CAST({x} AS JSON) -> CAST({i} AS INT)) ->> {key}"

Catalog = Mapping[str, set[str]]  # table -> its columns, in one dataset


@dataclass(frozen=True)
class SourceMapping:
    """One source's mapping: the columns it reads and one SELECT per view it feeds."""

    source: str
    reads: dict[str, dict[str, str]]
    selects: dict[str, str]

    @classmethod
    def of(cls, module: ModuleType) -> SourceMapping:
        return cls(module.SOURCE, module.READS, module.SELECTS)


def parse(sql: str) -> exp.Select:
    return sqlglot.parse_one(sql, read=READ_DIALECT)


def _template(template: str, **parts: exp.Expression) -> exp.Expression:
    filled = parse(f"SELECT {template.format(**{k: f'__{k}__' for k in parts})}").expressions[0]

    def put(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column) and not node.table and node.name.startswith("__"):
            return parts[node.name.strip("_")].copy()
        return node

    return filled.transform(put)


def expand_macros(tree: exp.Expression) -> exp.Expression:
    def expand(node: exp.Expression) -> exp.Expression:
        if not isinstance(node, exp.Anonymous):
            return node
        name, args = str(node.this).upper(), node.expressions
        if name == "JSON_INDEXES" and len(args) == 1:
            return _template(JSON_INDEXES, x=args[0])
        if name == "JSON_TEXT" and len(args) == 2:
            return _template(JSON_ELEMENT, x=args[0], i=args[1])
        if name == "JSON_TEXT" and len(args) == 3:
            return _template(JSON_FIELD, x=args[0], i=args[1], key=args[2])
        return node

    return tree.transform(expand)


def source_tables(tree: exp.Expression, reads: Mapping[str, object]) -> list[exp.Table]:
    """The table references in `tree` that name one of the source's tables."""
    return [t for t in tree.find_all(exp.Table)
            if isinstance(t.this, exp.Identifier) and not t.db and t.name in reads]


def _typed_null(column: str, type_: str) -> exp.Expression:
    return exp.alias_(exp.cast(exp.null(), exp.DataType.build(type_, dialect=READ_DIALECT)),
                      column, quoted=True)


def _stand_in(table: exp.Table, dataset: str, declared: dict[str, str], present: set[str] | None,
              database: str | None = None) -> exp.Expression:
    """The table qualified with its dataset (and `database`, when given); with typed NULLs
    for the declared columns it lacks; or, when it does not exist, an empty relation of the
    declared columns."""
    alias = table.alias or table.name
    if present is not None and set(declared) <= present:
        return exp.table_(table.name, db=dataset, catalog=database, quoted=True, alias=alias)
    if present is None:
        select = exp.select(*(_typed_null(c, t) for c, t in declared.items())).where(exp.false())
    else:
        missing = [_typed_null(c, t) for c, t in declared.items() if c not in present]
        select = exp.select(exp.Star(), *missing).from_(
            exp.table_(table.name, db=dataset, catalog=database, quoted=True))
    return exp.Subquery(this=select, alias=exp.TableAlias(this=exp.to_identifier(alias)))


def branch(view: View, mapping: SourceMapping, dataset: str, catalog: Catalog,
           database: str | None = None) -> exp.Select | None:
    """One source's SELECT for `view`, ready to union; None when it contributes nothing.
    `database` qualifies the source's tables (see `qualifier`)."""
    sql = mapping.selects.get(view.name)
    if sql is None:
        return None
    tree = expand_macros(parse(sql))
    main = tree.args["from_"].this
    if isinstance(main, exp.Table) and main.name not in catalog:
        return None  # the source has not created the table this SELECT reads from
    for table in source_tables(tree, mapping.reads):
        table.replace(_stand_in(table, dataset, mapping.reads[table.name], catalog.get(table.name),
                                database))
    columns = [exp.Literal.string(mapping.source).as_("source", quoted=True)]
    for column in view.columns[1:]:
        columns.append(exp.alias_(
            exp.cast(exp.column(column.name, table="q", quoted=True),
                     exp.DataType.build(column.type, dialect=READ_DIALECT)),
            column.name, quoted=True))
    wrapped = exp.select(*columns).from_(exp.Subquery(this=tree, alias=exp.TableAlias(this=exp.to_identifier("q"))))
    if view.where:
        wrapped = wrapped.where(sqlglot.condition(view.where, dialect=READ_DIALECT))
    return wrapped


def empty(view: View) -> exp.Select:
    return exp.select(*(_typed_null(c.name, c.type) for c in view.columns)).where(exp.false())


def view_query(view: View, branches: list[exp.Select]) -> exp.Expression:
    """The union of the branches (or an empty relation with the view's columns)."""
    if not branches:
        return empty(view)
    query: exp.Expression = branches[0]
    for other in branches[1:]:
        query = exp.union(query, other, distinct=False)
    return query


def qualifier(dialect: str, database: str | None, dataset: str) -> str | None:
    """The database to put before `dataset.table`, or None. Only where DuckDB needs it: a file
    `meetings.duckdb` is a catalog named `meetings`, and there `meetings.x` is ambiguous when a
    schema `meetings` exists too. Elsewhere names stay two-part, so a DuckDB file attached
    under another name keeps working."""
    return database if dialect == "duckdb" and database == dataset else None


def create_view_sql(view: View, model_dataset: str, query: exp.Expression, dialect: str,
                    database: str | None = None) -> str:
    target = exp.table_(view.name, db=model_dataset, catalog=database, quoted=True)
    create = exp.Create(this=target, kind="VIEW", replace=True, expression=query)
    return create.sql(dialect=dialect)


def column_refs(mapping: SourceMapping, view_name: str) -> dict[str, set[str]]:
    """Which columns of which source table a SELECT reads (for checks and documentation)."""
    tree = expand_macros(parse(mapping.selects[view_name]))
    aliases = {t.alias_or_name: t.name for t in source_tables(tree, mapping.reads)}
    refs: dict[str, set[str]] = {}
    for column in tree.find_all(exp.Column):
        if column.table in aliases:
            refs.setdefault(aliases[column.table], set()).add(column.name)
    return refs


def output_names(mapping: SourceMapping, view_name: str) -> list[str]:
    return [e.alias_or_name for e in parse(mapping.selects[view_name]).expressions]
