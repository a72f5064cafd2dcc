"""Alembic environment. Run through vpop.store.schema, which builds the Config in code
and hands over an open connection (config.attributes["connection"]); there is no
alembic.ini."""

from __future__ import annotations

from alembic import context

from vpop.store.models import Base, UTCDateTime

config = context.config
target_metadata = Base.metadata


def render_item(type_: str, obj, autogen_context):
    # Migrations must not import the models: they are frozen history, the models are not.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


OPTIONS = dict(
    target_metadata=target_metadata,
    # SQLite cannot ALTER most things: batch mode copies the table instead.
    render_as_batch=True,
    compare_type=True,
    render_item=render_item,
)


def run_migrations_offline() -> None:
    context.configure(url=config.attributes["url"], literal_binds=True,
                      dialect_opts={"paramstyle": "named"}, **OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes["connection"]
    context.configure(connection=connection, **OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
