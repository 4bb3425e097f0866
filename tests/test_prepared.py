"""SQLite's prepared plans (store.prepared) give what SQLAlchemy's executor gives, or leave it to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.ext.asyncio import AsyncEngine

from alertnet.store import db, prepared, tables
from alertnet.store import signals as signal_store

NOW = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
hoods, groups, members = tables.neighbourhoods, tables.groups, tables.members


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = db.create_engine(f"sqlite:///{tmp_path / 'a.db'}")
    await db.migrate(engine)
    async with db.write(engine) as conn:
        await conn.execute(
            sa.insert(hoods),
            {"name": "Molenwijk", "timezone": "Europe/Amsterdam", "language": "nl", "created_at": NOW},
        )
        await conn.execute(
            sa.insert(groups),
            [
                {
                    "neighbourhood_id": 1,
                    "name": name,
                    "join_code": code,
                    "join_policy": "open",
                    "escalation": {"window_s": 600, "chain": [{"responder_ids": [1]}]},
                    "created_at": NOW,
                }
                for name, code in (("Banne", "BANNE"), ("Molen", None))
            ],
        )
        await conn.execute(
            sa.insert(members),
            [
                {
                    "group_id": 1,
                    "phone": f"+3161234500{i}",
                    "name": name,
                    "language": "nl",
                    "role": "ally",
                    "status": "active",
                    "created_at": NOW + timedelta(seconds=i),
                    "consent_at": consent,
                }
                for i, (name, consent) in enumerate((("Ans", NOW), (None, None), ("Piet", NOW)))
            ],
        )
    yield engine
    await engine.dispose()


def reference(engine: AsyncEngine) -> sa.Engine:
    """SQLAlchemy's own sqlite3 dialect and executor on the same file."""
    return sa.create_engine(engine.url.set(drivername="sqlite"))


async def planned(engine: AsyncEngine, statement: Any, params: Any = None, times: int = 2) -> prepared.Result:
    """Run a statement `times` times in one transaction (a plan is made at the second): the last result."""
    async with db.write(engine) as conn:
        for _ in range(times):
            result = await conn.execute(statement, params)
    return result


def plans(engine: AsyncEngine, statement: Any) -> list[prepared.Plan | None]:
    entry = engine.sync_engine.dialect.plans._by_statement.get(id(statement))  # type: ignore[attr-defined]
    return list(entry[1].values()) if entry else []


QUERIES = [
    (signal_store._MEMBERSHIPS, {"phone": "+31612345000"}),
    (signal_store._GROUP_MEMBERS, {"group_id": 1}),
    (sa.select(members).where(members.c.consent_at.is_(None)), None),
    (sa.select(groups.c.escalation, groups.c.join_code).order_by(groups.c.id.desc()), None),
    (sa.select(sa.func.count(), sa.func.max(members.c.created_at)).select_from(members), None),
    (sa.select(hoods.c.share_reporter_phone, sa.literal(3).label("three")), None),
]


@pytest.mark.parametrize(("statement", "params"), QUERIES)
async def test_a_planned_select_reads_what_sqlalchemy_reads(
    engine: AsyncEngine, statement: Any, params: Any
) -> None:
    with reference(engine).connect() as conn:
        expected = [dict(row._mapping) for row in conn.execute(statement, params)]
    result = await planned(engine, statement, params)
    assert isinstance(result, prepared.Result)
    got = [dict(row._mapping) for row in result]
    assert got == expected
    assert got
    assert [type(v) for row in got for v in row.values()] == [
        type(v) for row in expected for v in row.values()
    ]
    first = result.first()
    assert first is not None
    assert tuple(first) == tuple(expected[0].values())
    name = next(iter(expected[0]))
    assert getattr(first, name) == first[0] == expected[0][name]


async def test_planned_writes_store_what_sqlalchemy_stores(engine: AsyncEngine) -> None:
    insert = sa.insert(members)
    rows = [
        {
            "group_id": 2,
            "phone": f"+3162000000{i}",
            "name": None,
            "language": "en",
            "role": "ally",
            "status": "pending",
            "share_name": i % 2 == 0,
            "created_at": NOW + timedelta(hours=i),
        }
        for i in range(4)
    ]
    await planned(engine, insert, rows[:2], times=1)
    result = await planned(engine, insert, rows[2:], times=1)  # the second time: planned executemany
    assert plans(engine, insert)
    assert all(plans(engine, insert))
    assert result.rowcount == 2
    update = members.update().where(members.c.id == sa.bindparam("member")).values(status="active")
    result = await planned(engine, update, {"member": 5})
    assert result.rowcount == 1
    returning = members.update().where(members.c.group_id == 2).values(name="X").returning(members.c.id)
    assert (await planned(engine, returning)).scalars().all() == [4, 5, 6, 7]
    with reference(engine).connect() as conn:
        stored = conn.execute(sa.select(members).where(members.c.group_id == 2).order_by(members.c.id)).all()
    assert [(r.share_name, r.status, r.created_at) for r in stored] == [
        (True, "pending", NOW),
        (False, "active", NOW + timedelta(hours=1)),
        (True, "pending", NOW + timedelta(hours=2)),
        (False, "pending", NOW + timedelta(hours=3)),
    ]


async def test_a_constraint_fails_as_sqlalchemys_integrity_error(engine: AsyncEngine) -> None:
    insert = sa.insert(groups)
    values = {
        "neighbourhood_id": 1,
        "name": "Twin",
        "join_code": "BANNE",
        "join_policy": "open",
        "escalation": {},
        "created_at": NOW,
    }
    with pytest.raises(exc.IntegrityError, match="UNIQUE constraint failed"):
        await planned(engine, insert, values)
    assert plans(engine, insert) != [None]


async def test_results_count_their_rows_as_sqlalchemy_does(engine: AsyncEngine) -> None:
    query = (
        sa.select(members.c.id).where(members.c.group_id == sa.bindparam("group_id")).order_by(members.c.id)
    )
    assert (await planned(engine, query, {"group_id": 1})).scalars().all() == [1, 2, 3]
    with pytest.raises(exc.MultipleResultsFound):
        (await planned(engine, query, {"group_id": 1})).one()
    with pytest.raises(exc.NoResultFound):
        (await planned(engine, query, {"group_id": 9})).scalar_one()
    assert (await planned(engine, query, {"group_id": 9})).scalar() is None
    assert (await planned(engine, query, {"group_id": 9})).one_or_none() is None


async def test_what_a_plan_cannot_take_runs_through_sqlalchemy(engine: AsyncEngine) -> None:
    text = sa.text("SELECT name FROM groups ORDER BY id")
    expanding = sa.select(members.c.id).where(members.c.id.in_(sa.bindparam("ids", expanding=True)))
    many_returning = sa.insert(hoods).returning(hoods.c.id)
    hood = {"timezone": "Europe/Amsterdam", "language": "nl", "created_at": NOW}
    assert (await planned(engine, text)).scalars().all() == ["Banne", "Molen"]
    assert sorted((await planned(engine, expanding, {"ids": [1, 3]})).scalars()) == [1, 3]
    made = await planned(engine, many_returning, [{"name": "A", **hood}, {"name": "B", **hood}])
    assert len(made.scalars().all()) == 2
    assert plans(engine, text) == []  # not even looked at
    assert plans(engine, expanding) == plans(engine, many_returning) == [None]
    # The rows of an executemany that differ in their names: SQLAlchemy's rules (a missing value
    # of a nullable column is NULL), not a KeyError.
    insert = sa.insert(hoods)
    await planned(engine, insert, [{"name": "C", **hood}, {"name": "D", **hood}])
    await planned(
        engine, insert, [{"name": "E", **hood}, {"name": "F", **hood, "share_reporter_phone": False}]
    )


async def test_a_statement_run_once_is_not_planned_and_events_see_every_statement(
    engine: AsyncEngine,
) -> None:
    once = sa.select(groups.c.id)
    await planned(engine, once, times=1)
    assert plans(engine, once) == []
    seen: list[str] = []
    sa.event.listen(engine.sync_engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
    twice = sa.select(groups.c.name)
    await planned(engine, twice, times=3)
    assert len(seen) == 3
    assert plans(engine, twice) == []
