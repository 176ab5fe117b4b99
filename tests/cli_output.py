"""Reading a parity command's stderr the way a person does: parity's own JSON log lines below
error (progress, "waiting for ..." notices) are context; the failure is the one `error:` line."""

from __future__ import annotations

import json


def is_log_record(line: str) -> bool:
    """A JSON log line of parity's with a level below error."""
    try:
        record = json.loads(line)
    except ValueError:
        return False
    return isinstance(record, dict) and "event" in record and record.get("level") in ("debug", "info", "warning")
