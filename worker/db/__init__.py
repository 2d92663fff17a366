"""The database: typed models, engine and session set-up, migrations, audit."""
