"""Refusals that do not belong to one route: store errors, and characters no route can match.

A query route does not catch store errors itself. A `StoreError` it lets through (the
database unreachable, a read cancelled by `storage.query_timeout_seconds`, every read slot
taken) answers 503 in the shape of Litestar's own errors, `{"status_code": 503, "detail":
"<one line>"}`, with Retry-After, instead of a 500: the request was fine, the store could not
answer it now. The message is the exception's, which never holds a URL or a password
(store/postgres_connect.py). The ingest route answers its own 503s (sources/http.py).

A NUL character in a request's path or query is refused with 400 before any route runs
(`refuse_nul`, a `before_request` hook): PostgreSQL's text cannot hold one (the read failed,
a 5xx the fuzzer found) and the adapters strip control characters, so no stored value has
one and such a filter could match nothing on either backend.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response
from litestar.exceptions import ValidationException

from honeyatlas.errors import QueryTimeout, ReadsBusy, StoreError

UNAVAILABLE = 503


def store_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    retry_after = exc.retry_after_seconds if isinstance(exc, QueryTimeout | ReadsBusy) else 1
    detail = (str(exc).splitlines() or [type(exc).__name__])[0]
    return Response({"status_code": UNAVAILABLE, "detail": detail}, status_code=UNAVAILABLE,
                    headers={"Retry-After": str(retry_after)})


EXCEPTION_HANDLERS = {StoreError: store_unavailable}


def refuse_nul(request: Request[Any, Any, Any]) -> None:
    """400 for a NUL character anywhere in the path or the query (see the module docstring)."""
    path = request.scope["path"]
    query = request.query_params.multi_items()
    if "\x00" in path or any("\x00" in key or "\x00" in value for key, value in query):
        raise ValidationException("the path or a query parameter holds a NUL character, which no stored value has")
