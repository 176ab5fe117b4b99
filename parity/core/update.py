"""The UpdateItem that makes a target item hold what one mapping writes for a row.

Shadow mode (each change event) and repair (each drifted key) both write with UpdateItem, not
PutItem, so attributes the mapping does not write survive. Which attributes those are is decided
here, once:

- written: every attribute of the mapped item except the key (which is the UpdateItem's `Key`),
  the mapping's `ignore_attributes` and its `version_attribute`. Those two belong to someone else
  (the application's TTL, another writer's field) or to shadow mode's version check, whatever
  column happens to produce the same name;
- removed: every attribute the mapping can produce (mapped columns, index templates, constants)
  that the row maps to no value for (NULL written as absent, an empty index key, an empty set),
  except attributes whose value is not known (a TOASTed column the event does not carry);
- the version: shadow mode SETs it to the event's LSN (the caller's condition compares it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from parity.core.config import TableMapping
from parity.core.values import Value, WireValue, to_wire


@dataclass(frozen=True, slots=True)
class OwnedAttributes:
    """Which attributes of a target item one mapping writes, besides the key."""

    key: frozenset[str]
    produced: tuple[str, ...]  # sorted; removed when the row maps to no value for them
    left_alone: frozenset[str]  # never set nor removed from the mapped values

    @classmethod
    def of(cls, mapping: TableMapping) -> OwnedAttributes:
        key = frozenset(mapping.keys)
        left_alone = frozenset({*mapping.ignore_attributes, mapping.version_attribute})
        produced = {r.attribute(c) for c, r in mapping.columns.items() if not r.exclude}
        produced.update(mapping.indexes)
        produced.update(mapping.constants)
        return cls(key, tuple(sorted(produced - key - left_alone)), left_alone)


@dataclass(frozen=True, slots=True)
class ItemUpdate:
    """An UpdateExpression with its placeholders (`#u`/`:u` SET, `#r` REMOVE, `#v`/`:v` version)."""

    expression: str
    names: dict[str, str]
    values: dict[str, WireValue]
    removed: tuple[str, ...]


def item_update(
    owned: OwnedAttributes,
    item: Mapping[str, Value],
    *,
    unavailable: Iterable[str] = (),
    version: tuple[str, int] | None = None,
) -> ItemUpdate | None:
    """The update that makes the stored item's owned attributes equal `item` (and sets `version`,
    (attribute, LSN), first); None when there is nothing to set or remove besides the key."""
    names: dict[str, str] = {}
    values: dict[str, WireValue] = {}
    sets: list[str] = []
    if version is not None:
        names["#v"], values[":v"] = version[0], {"N": str(version[1])}
        sets.append("#v = :v")
    written = sorted(a for a in item if a not in owned.key and a not in owned.left_alone)
    for i, attr in enumerate(written):
        names[f"#u{i}"] = attr
        values[f":u{i}"] = to_wire(item[attr])
        sets.append(f"#u{i} = :u{i}")
    unknown = set(unavailable)
    removed = tuple(a for a in owned.produced if a not in item and a not in unknown)
    for j, attr in enumerate(removed):
        names[f"#r{j}"] = attr
    if not sets and not removed:
        return None
    parts = []
    if sets:
        parts.append("SET " + ", ".join(sets))
    if removed:
        parts.append("REMOVE " + ", ".join(f"#r{j}" for j in range(len(removed))))
    return ItemUpdate(" ".join(parts), names, values, removed)
