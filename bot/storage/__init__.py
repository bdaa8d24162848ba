"""Storage: SQLAlchemy 2 models, engine/session handling and Alembic migrations."""
