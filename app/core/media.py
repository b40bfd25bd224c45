"""Refuse a request body in a media type its operation does not read (415, not 422)."""

from email.message import Message

from fastapi import Request
from fastapi.params import Form
from starlette.datastructures import Headers

from app.core.errors import UnsupportedMediaType

FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


def is_json(content_type: str) -> bool:
    """Whether a media type is JSON (`application/json` or `application/*+json`)."""
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


def _media_type(headers: Headers) -> str | None:
    raw = headers.get("content-type")
    if raw is None:
        return None
    message = Message()
    message["content-type"] = raw
    return message.get_content_type()


async def require_body_media_type(request: Request) -> None:
    """Answer 415 when a body arrives in a media type the operation does not accept.

    Without this a JSON document sent as `text/plain` (or as a form) is read as raw bytes
    and reported as an invalid body (422), and the caller never learns what to change.
    """
    body_field = getattr(request.scope.get("route"), "body_field", None)
    headers = request.headers
    has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
    if body_field is None or not has_body:
        return
    media_type = _media_type(headers)
    if isinstance(body_field.field_info, Form):
        accepted, wanted = media_type in FORM_TYPES, "application/x-www-form-urlencoded"
    else:
        accepted, wanted = media_type is not None and is_json(media_type), "application/json"
    if not accepted:
        raise UnsupportedMediaType(f"Send the body as {wanted}.")
