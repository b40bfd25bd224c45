"""Every domain's models in one import, for Alembic and the schema-drift test."""

from app.audit import models as audit_models
from app.auth import models as auth_models
from app.bookings import models as booking_models
from app.bookings import series_models
from app.core import idempotency_store as idempotency_models
from app.core.db import Base
from app.users import models as user_models

metadata = Base.metadata

__all__ = [
    "audit_models",
    "auth_models",
    "booking_models",
    "idempotency_models",
    "metadata",
    "series_models",
    "user_models",
]
