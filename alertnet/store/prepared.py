"""SQLite statements compiled once and run straight on sqlite3: SQLAlchemy's statements, not its executor.

For each execution SQLAlchemy's Core computes the statement's cache key, builds an execution
context and its parameters, a cursor result and `Row`s: about 20 µs a statement and 5 µs a row of
an executemany, against 5 µs for SQLite to run the statement itself. An inbound signal runs a dozen
statements and stores nine deliveries, so that overhead was most of its cost.

Here a statement that is executed a second time (the store's statements are module constants) is
compiled by SQLAlchemy once, for the parameter names it is given, into a `Plan`: the SQL, where each
positional parameter comes from with its type's bind processor, and the result columns with their
result processors. Running a plan is what `DefaultExecutionContext` does for such a statement,
without the generality: the values go through the same processors, the errors are wrapped as
SQLAlchemy wraps them, and the result is a small `Result` with the methods alertnet uses.

Anything a plan does not cover runs through SQLAlchemy as before: text statements, expanding or
literal parameters, Python-side column defaults, executemany with RETURNING, statements with
execution options, and every statement while engine events are listened for (tests count them).
"""

from __future__ import annotations

import operator
import sqlite3
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler

Params = dict[str, Any]
Processor = Callable[[Any], Any] | None
_DML_OR_SELECT = (sa.Select, sa.Insert, sa.Update, sa.Delete, sa.CompoundSelect)


class Row(tuple[Any, ...]):
    """A result row: by position, by attribute, and as `_mapping` (a new dict of its columns)."""

    __slots__ = ()
    _keys: tuple[str, ...] = ()
    _index: dict[str, int] = {}  # noqa: RUF012  # set per plan on a subclass, read-only

    @property
    def _mapping(self) -> dict[str, Any]:
        return dict(zip(self._keys, self, strict=True))

    def __getattr__(self, name: str) -> Any:
        try:
            return self[self._index[name]]
        except KeyError:
            raise AttributeError(name) from None


T = TypeVar("T")


class _Fetched(Generic[T]):
    """Rows or values already fetched, with `Result`'s ways of taking them."""

    __slots__ = ("_items",)

    def __init__(self, items: list[T]) -> None:
        self._items = items

    def __iter__(self) -> Iterator[T]:
        return iter(self._items)

    def all(self) -> list[T]:
        return list(self._items)

    fetchall = all

    def first(self) -> T | None:
        return self._items[0] if self._items else None

    def one_or_none(self) -> T | None:
        if len(self._items) > 1:
            raise exc.MultipleResultsFound("Multiple rows were found when one or none was required")
        return self.first()

    def one(self) -> T:
        if not self._items:
            raise exc.NoResultFound("No row was found when one was required")
        if len(self._items) > 1:
            raise exc.MultipleResultsFound("Multiple rows were found when exactly one was required")
        return self._items[0]


class Scalars(_Fetched[Any]):
    """The first column's values, as SQLAlchemy's `ScalarResult` gives them."""

    __slots__ = ()


class Result(_Fetched[Row]):
    """The part of SQLAlchemy's `Result` that alertnet uses, over rows already fetched."""

    __slots__ = ("rowcount",)

    def __init__(self, rows: list[Row], rowcount: int) -> None:
        super().__init__(rows)
        self.rowcount = rowcount

    def scalar(self) -> Any:
        return self._items[0][0] if self._items else None

    def scalar_one(self) -> Any:
        return self.one()[0]

    def scalar_one_or_none(self) -> Any:
        row = self.one_or_none()
        return None if row is None else row[0]

    def scalars(self) -> Scalars:
        return Scalars([row[0] for row in self._items])


class Plan:
    """One statement compiled for one set of parameter names."""

    __slots__ = ("dialect", "get", "many", "positions", "processors", "row", "sql", "template", "to_bind")

    def __init__(
        self,
        dialect: Dialect,
        sql: str,
        binds: list[tuple[str | None, Any, Processor]],
        row: type[Row] | None,
        processors: list[tuple[int, Callable[[Any], Any]]],
        many: bool,
    ) -> None:
        self.dialect = dialect
        self.sql = sql
        self.row = row
        self.processors = processors
        self.many = many
        # The statement's own values are bound once, here; the parameters' are fetched by one
        # itemgetter and bound at each execution.
        self.template = [
            (fixed if process is None else process(fixed)) if key is None else None
            for key, fixed, process in binds
        ]
        self.positions = [i for i, (key, _, _) in enumerate(binds) if key is not None]
        names = [key for key, _, _ in binds if key is not None]
        self.get = operator.itemgetter(*names) if names else None
        self.to_bind = [
            (i, process)
            for i, (key, _, process) in enumerate(binds)
            if key is not None and process is not None
        ]

    def _values(self, params: Params) -> list[Any]:
        values = self.template.copy()
        if self.get is not None:
            got = self.get(params)
            if len(self.positions) == 1:
                values[self.positions[0]] = got
            elif len(self.positions) == len(values):
                values = list(got)
            else:
                for position, value in zip(self.positions, got, strict=True):
                    values[position] = value
        for position, process in self.to_bind:
            values[position] = process(values[position])
        return values

    def run(self, dbapi_connection: sqlite3.Connection, params: Params | list[Params]) -> Result:
        """Run the statement; a KeyError (a row of an executemany without a value this plan
        takes) comes before anything ran, so the caller can hand the statement to SQLAlchemy."""
        if self.many:
            assert isinstance(params, list)
            many = [self._values(p) for p in params]
        else:
            assert isinstance(params, dict)
            one = self._values(params)
        try:
            cursor = (
                dbapi_connection.executemany(self.sql, many)
                if self.many
                else dbapi_connection.execute(self.sql, one)
            )
            rows = cursor.fetchall() if self.row is not None else []
        except sqlite3.Error as error:
            raise exc.DBAPIError.instance(
                self.sql, params, error, sqlite3.Error, dialect=self.dialect, ismulti=self.many
            ) from error
        return Result(self._rows(rows), cursor.rowcount)

    def _rows(self, fetched: list[Any]) -> list[Row]:
        make = self.row
        if make is None:
            return []
        if not self.processors:
            return [make(values) for values in fetched]
        rows = []
        for values in fetched:
            processed = list(values)
            for index, process in self.processors:
                processed[index] = process(processed[index])
            rows.append(make(processed))
        return rows


def compile_plan(dialect: Dialect, statement: Any, keys: Sequence[str], many: bool) -> Plan | None:
    """The statement's plan for these parameter names, or None where SQLAlchemy must run it."""
    if statement._execution_options:
        return None
    compiled = statement.compile(dialect=dialect, column_keys=sorted(keys), for_executemany=many)
    assert isinstance(compiled, SQLCompiler)
    if (
        not compiled.positional
        or compiled.literal_execute_params
        or compiled.post_compile_params
        or compiled.insert_prefetch
        or compiled.update_prefetch
        or compiled._collected_params
        or compiled.escaped_bind_names
        or compiled.positiontup is None
    ):
        return None
    columns = compiled._result_columns
    if many and columns:
        return None  # executemany with RETURNING: SQLAlchemy's "insertmanyvalues"
    binds = _binds(compiled, set(keys))
    if binds is None:
        return None
    row: type[Row] | None = None
    processors: list[tuple[int, Callable[[Any], Any]]] = []
    if columns:
        names = tuple(column.keyname for column in columns)
        if not compiled._ordered_columns or None in names or len(set(names)) != len(names):
            return None
        index = {name: i for i, name in enumerate(names)}
        row = type("Row", (Row,), {"__slots__": (), "_keys": names, "_index": index})
        for i, column in enumerate(columns):
            process = column.type._cached_result_processor(dialect, None)
            if process is not None:
                processors.append((i, process))
    elif statement.is_select:
        return None
    return Plan(dialect, compiled.string, binds, row, processors, many)


def _binds(compiled: SQLCompiler, keys: set[str]) -> list[tuple[str | None, Any, Processor]] | None:
    """Where each positional value comes from (a parameter's name, or the statement's own value)
    and its bind processor, as `SQLCompiler.construct_params` finds them."""
    assert compiled.positiontup is not None
    processors = compiled._bind_processors
    binds: list[tuple[str | None, Any, Processor]] = []
    for name in compiled.positiontup:
        bind = compiled.binds[name]
        if bind.callable is not None:
            return None
        process = processors.get(name)
        if process is not None and not callable(process):
            return None  # a tuple's processors, one per element
        if bind.key in keys:
            binds.append((bind.key, None, process))
        elif name in keys:
            binds.append((name, None, process))
        elif bind.required:
            return None  # SQLAlchemy raises its error for the missing value
        else:  # the statement's own value (`.where(col == 5)`)
            binds.append((None, bind.value, process))
    return binds


class Plans:
    """A dialect's plans, by statement and parameter names; a statement is planned when it is
    executed the second time, so statements built for one execution cost nothing extra."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        #: id(statement) -> (a weak reference to it, {(names, many): its plan, or None})
        self._by_statement: dict[
            int, tuple[weakref.ref[Any], dict[tuple[tuple[str, ...], bool], Plan | None]]
        ] = {}

    def get(self, statement: Any, keys: tuple[str, ...], many: bool) -> Plan | None:
        if not isinstance(statement, _DML_OR_SELECT):
            return None
        entry = self._by_statement.get(id(statement))
        if entry is None or entry[0]() is not statement:
            self._remember(statement)
            return None
        plans = entry[1]
        key = (keys, many)
        if key in plans:
            return plans[key]
        plan = plans[key] = compile_plan(self.dialect, statement, keys, many)
        return plan

    def _remember(self, statement: Any) -> None:
        ident = id(statement)
        by_statement = self._by_statement

        def forget(_ref: weakref.ref[Any]) -> None:
            entry = by_statement.get(ident)
            if entry is not None and entry[0] is _ref:
                del by_statement[ident]

        by_statement[ident] = (weakref.ref(statement, forget), {})
