"""The doctor's result model: one `Check` per finding, a `Report` that groups and renders them.

Pure: no clients, no clocks. Probes build `Check` values; the command renders the `Report`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

# Systems in the order an SRE fixes them: the source first, the target, the stream, then the data.
SYSTEMS = ("postgres", "dynamodb", "kafka", "mapping", "permissions")


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Check:
    """One finding. `subject` names what was checked (a table, a topic, an index); `fix` says what
    to do about a warn or fail, so the line can be acted on without reading documentation."""

    system: str
    name: str
    status: Status
    reason: str
    fix: str = ""
    subject: str = ""

    def line(self) -> str:
        where = f" [{self.subject}]" if self.subject else ""
        text = f"{self.status.value:<4} {self.name}{where}: {self.reason}"
        if self.fix and self.status is not Status.OK:
            text += f" -> fix: {self.fix}"
        return text


def ok(system: str, name: str, reason: str, *, subject: str = "") -> Check:
    return Check(system, name, Status.OK, reason, "", subject)


def warn(system: str, name: str, reason: str, fix: str, *, subject: str = "") -> Check:
    return Check(system, name, Status.WARN, reason, fix, subject)


def fail(system: str, name: str, reason: str, fix: str, *, subject: str = "") -> Check:
    return Check(system, name, Status.FAIL, reason, fix, subject)


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    def extend(self, checks: Iterable[Check]) -> None:
        self.checks.extend(checks)

    def __iter__(self) -> Iterator[Check]:
        return iter(self.checks)

    def by_system(self) -> list[tuple[str, list[Check]]]:
        order = {s: i for i, s in enumerate(SYSTEMS)}
        systems = sorted({c.system for c in self.checks}, key=lambda s: (order.get(s, len(order)), s))
        return [(s, [c for c in self.checks if c.system == s]) for s in systems]

    def count(self, status: Status) -> int:
        return sum(1 for c in self.checks if c.status is status)

    @property
    def failed(self) -> bool:
        return self.count(Status.FAIL) > 0

    def exit_code(self) -> int:
        """0 when nothing fails (warnings included); 2 when AWS credentials are missing; 3 when a
        system cannot be reached (an operational failure, not a finding: see `parity.exit_codes`);
        else 1 when something fails."""
        unreachable = [c for c in self.checks if c.name == "reachable" and c.status is Status.FAIL]
        if any("NoCredentialsError" in c.reason for c in unreachable):
            return 2  # the environment's setup, as in every other command (parity.exit_codes)
        if unreachable:
            return 3
        return 1 if self.failed else 0

    def find(self, *, system: str | None = None, name: str | None = None,
             status: Status | None = None, subject: str | None = None) -> list[Check]:
        return [
            c for c in self.checks
            if (system is None or c.system == system) and (name is None or c.name == name)
            and (status is None or c.status is status) and (subject is None or c.subject == subject)
        ]

    def summary(self) -> str:
        return (f"{self.count(Status.OK)} ok, {self.count(Status.WARN)} warn, "
                f"{self.count(Status.FAIL)} fail")

    def to_text(self) -> str:
        lines: list[str] = []
        for system, checks in self.by_system():
            lines.append(f"{system}:")
            lines.extend(f"  {c.line()}" for c in checks)
        lines.append(self.summary())
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": not self.failed,
            "summary": {s.value: self.count(s) for s in Status},
            "checks": [{**asdict(c), "status": c.status.value} for c in self.checks],
        }
