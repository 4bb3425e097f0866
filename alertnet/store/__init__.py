"""Persistence: tables, the engine, migrations and the queries, by subject."""
