"""Alembic environment: the URL comes from the caller (worker.db.migrate) or the settings."""

from __future__ import annotations

from alembic import context

from worker.db.engine import make_engine
from worker.db.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url")
if not url:
    from worker.settings import Settings

    url = Settings().effective_database_url

if context.is_offline_mode():
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=url.startswith("sqlite"),
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
