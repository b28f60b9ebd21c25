"""How the store's refusals reach an API client: one Litestar exception handler.

A query route does not catch store errors itself. A `StoreError` it lets through (the
database unreachable, a read cancelled by `storage.query_timeout_seconds`, every read slot
taken) answers 503 in the shape of Litestar's own errors, `{"status_code": 503, "detail":
"<one line>"}`, with Retry-After, instead of a 500: the request was fine, the store could not
answer it now. The message is the exception's, which never holds a URL or a password
(store/postgres_connect.py). The ingest route answers its own 503s (sources/http.py).
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response

from honeyatlas.errors import QueryTimeout, ReadsBusy, StoreError

UNAVAILABLE = 503


def store_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    retry_after = exc.retry_after_seconds if isinstance(exc, QueryTimeout | ReadsBusy) else 1
    detail = (str(exc).splitlines() or [type(exc).__name__])[0]
    return Response({"status_code": UNAVAILABLE, "detail": detail}, status_code=UNAVAILABLE,
                    headers={"Retry-After": str(retry_after)})


EXCEPTION_HANDLERS = {StoreError: store_unavailable}
