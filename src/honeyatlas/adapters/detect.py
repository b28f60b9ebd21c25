"""Format `auto`: pick the adapter for one record by asking each adapter's `detect`.

Adapters are asked in `priority` order (specific formats first, generic ones such as T-Pot
and ECS last), then by name, so the choice is deterministic. A record no adapter claims is
rejected with a reason that says what was seen, so the operator can pick a format or write
a mapping. Pure: no I/O, no state.
"""

from __future__ import annotations

import logging
from typing import Any

from honeyatlas.adapters import Adapter
from honeyatlas.errors import RecordRejected

AUTO = "auto"
log = logging.getLogger(__name__)


class AutoDetector:
    def __init__(self, adapters: dict[str, Adapter]) -> None:
        ordered = sorted(adapters.values(), key=lambda a: (a.priority, a.name))
        self._json = [a for a in ordered if a.detect is not None and a.input == "json"]
        self._text = [a for a in ordered if a.detect is not None and a.input == "text"]

    def pick(self, value: Any) -> Adapter:
        candidates = self._text if isinstance(value, str) else self._json
        for adapter in candidates:
            try:
                if adapter.detect(value):  # type: ignore[misc]
                    return adapter
            except Exception:  # a detect bug must not stop the stream; try the next format
                log.exception("detect of format %s failed", adapter.name)
        raise RecordRejected(f"format not recognised: {_describe(value)}; name the format in the URL")


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        keys = sorted(str(k)[:32] for k in list(value)[:64])
        shown = ", ".join(keys[:12]) + (", ..." if len(keys) > 12 else "")
        return f"a JSON object with keys {shown or '(none)'}"
    if isinstance(value, str):
        return "a text line that is not JSON and matches no text format (CEF)"
    return f"a JSON {type(value).__name__.replace('NoneType', 'null')}, not an object"
