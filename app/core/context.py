"""Who and where of the current request, held in a contextvar for logs and the audit trail."""

from contextvars import ContextVar
from dataclasses import dataclass
from uuid import UUID


@dataclass(slots=True)
class RequestContext:
    """What is known about the caller of the work in progress.

    One mutable object per request: auth fills in the actor later, and every task
    that copied the context sees the same object.
    """

    request_id: str | None = None
    client_ip: str | None = None
    user_agent: str | None = None
    actor_id: UUID | None = None
    actor_role: str | None = None
    committed_early: bool = False
    """Part of the request's work was committed before it ended (see `commit_early`)."""


_current: ContextVar[RequestContext | None] = ContextVar("roombook_request_context", default=None)


def current_context() -> RequestContext:
    """Return the context of the running request, or an empty one for CLI and startup work."""
    return _current.get() or RequestContext()


def start_context(context: RequestContext) -> None:
    """Install a new context for the request starting in this task."""
    _current.set(context)


def bind_actor(*, actor_id: UUID, actor_role: str) -> None:
    """Record the authenticated caller once auth has identified them."""
    context = _current.get()
    if context is None:
        context = RequestContext()
        _current.set(context)
    context.actor_id = actor_id
    context.actor_role = actor_role
