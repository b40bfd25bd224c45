"""Every domain's models in one import, for Alembic and the schema-drift test."""

from app.core.db import Base

metadata = Base.metadata

__all__ = ["metadata"]
