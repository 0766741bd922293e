"""Errors the web API answers with, each with its HTTP status. Any other ``LongvidError`` is
the client's bad input (400); anything else is the server's fault (500)."""

from __future__ import annotations

from longvid.errors import DoesNotFitError, LongvidError


class HTTPError(LongvidError):
    status = 400


class BadRequest(HTTPError):
    status = 400


class Gone(HTTPError):
    """An upload that was used already or expired."""

    status = 400


class NotFound(HTTPError):
    status = 404


class PayloadTooLarge(HTTPError):
    status = 413


class TooManyRequests(HTTPError):
    status = 429


class Busy(HTTPError):
    """Too many requests wait for the one model."""

    status = 429


class Forbidden(HTTPError):
    status = 403


class InsufficientStorage(HTTPError):
    """The server holds as many uploaded bytes as it was told to."""

    status = 507


def status_of(error: LongvidError) -> int:
    return error.status if isinstance(error, HTTPError) else 400


def message_of(error: LongvidError) -> str:
    """The one line the client sees (advice carried as data is spelled as the page's fields)."""
    return error.render("web") if isinstance(error, DoesNotFitError) else str(error)
