"""`alertnet demo`: a seeded neighbourhood on SQLite with the console SMS provider."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import SecretStr

from . import admin
from .app import create_app, utcnow
from .auth import CLI
from .cli import listen
from .policy import ChainStep, EscalationPolicy
from .schemas import GroupIn, MemberIn, MemberRole, NeighbourhoodIn, ResponderIn
from .settings import Settings
from .store import db
from .store.tables import neighbourhoods

NAME = "Molenwijk (demo)"
ALLIES = [
    ("+31612345001", "Ans"),
    ("+31612345002", "Bram"),
    ("+31612345003", "Carmen"),
    ("+31612345004", "Dirk"),
    ("+31612345005", "Esra"),
]
COORDINATOR = ("+31612345010", "Fatima")
OFFICER = "+31612345900"


async def seed(engine: Any) -> tuple[str, dict[str, Any]]:
    """Create the demo neighbourhood once; return a fresh admin token and what was made."""
    now = utcnow()
    async with db.write(engine) as conn:
        hood_id = await conn.scalar(sa.select(neighbourhoods.c.id).where(neighbourhoods.c.name == NAME))
        if hood_id is None:
            hood = await admin.create_neighbourhood(conn, CLI, NeighbourhoodIn(name=NAME), now)
            hood_id = hood["id"]
            officer = await admin.add_responder(
                conn, CLI, hood_id, ResponderIn(name="Buurtregisseur Jansen", phone=OFFICER), now
            )
            backup = await admin.add_responder(
                conn,
                CLI,
                hood_id,
                ResponderIn(name="Politie wijkteam", phone="+31612345901", role="backup"),
                now,
            )
            # Short times, so a newcomer sees the escalation within a minute or two.
            policy = EscalationPolicy(
                ack_timeout_s=60,
                chain=[
                    ChainStep(responder_ids=[officer["id"]], timeout_s=60),
                    ChainStep(responder_ids=[backup["id"]], timeout_s=60),
                ],
            )
            group = await admin.create_group(
                conn, CLI, hood_id, GroupIn(name="Molenwijk Noord", join_code="MOLEN", escalation=policy), now
            )
            for phone, name in ALLIES:
                await admin.add_member(
                    conn, CLI, group["id"], MemberIn(phone=phone, name=name, share_name=True), now
                )
            await admin.add_member(
                conn,
                CLI,
                group["id"],
                MemberIn(phone=COORDINATOR[0], name=COORDINATOR[1], role=MemberRole.coordinator),
                now,
            )
        secret, _ = await admin.issue_admin_token(conn, CLI, "demo", now)
    return secret, {"neighbourhood_id": hood_id}


def _invocation() -> str:
    """How this shell calls alertnet, so the commands the demo prints work when copied."""
    invoked = Path(sys.argv[0])
    if invoked.name != "alertnet":  # python -m alertnet
        return f"{sys.executable} -m alertnet"
    on_path = shutil.which("alertnet")
    return "alertnet" if on_path and Path(on_path).resolve() == invoked.resolve() else str(invoked)


def run(settings: Settings) -> int:
    async def prepare() -> tuple[str, dict[str, Any]]:
        engine = db.create_engine(settings.database_url)
        try:
            await db.migrate(engine)
            return await seed(engine)
        finally:
            await engine.dispose()

    secret, _ = asyncio.run(prepare())
    settings = settings.model_copy(update={"admin_token": SecretStr(secret)})
    base = f"http://{settings.host}:{settings.port}"
    sms = f"{_invocation()} sms" + ("" if settings.port == 8080 else f" --url {base}")
    print(
        f"""
alertnet demo: {NAME}, group "Molenwijk Noord" (join code MOLEN), 5 allies, a coordinator,
a buurtregisseur and a backup. SMS are printed here instead of sent.

  admin token:  {secret}
  API document: {base}/api/openapi.json

Try it from a second terminal ({sms} posts an SMS as Twilio would):
  {sms} --from {ALLIES[0][0]} "Verdachte man bij de fietsenstalling"
      four allies and the coordinator get it; with no OK within 60 s the buurtregisseur is called
  {sms} --from {ALLIES[1][0]} "OK"            an ally goes to look; the others hear it
  {sms} --from {ALLIES[2][0]} "Brand in de container"   an urgent word calls the buurtregisseur at once
  {sms} --from {OFFICER} "OK"           the buurtregisseur answers: no backup is called
  {sms} --from {OFFICER} "KLAAR"        resolved: everyone alerted hears it
  curl -H 'Authorization: Bearer {secret}' {base}/api/v1/incidents/1

Stop with Ctrl-C.
""",
        flush=True,
    )
    return listen(create_app(settings), settings)
