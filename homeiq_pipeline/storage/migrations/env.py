"""Alembic environment: migrations run on the connection handed in by `database.upgrade`."""

from alembic import context

from homeiq_pipeline.storage.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,  # SQLite can only ALTER tables by copying them
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
