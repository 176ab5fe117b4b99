"""A compiled per-event path: decode + expect of one Debezium envelope in one pass.

The general path (`decode_record`, then `expect`) walks the row's columns three times through
generic loops: decode them, convert them by the mapping, and check what is missing. Profiled,
its cost is flat interpreter overhead per column per step (issue 23). A `RowPlan` is the same
work as straight-line Python source, generated once per (row schema as the record's Connect
schema gives it, mapping) and cached, so the per-column loop, tuple unpacking and attribute
lookups disappear and each column is a few local operations.

CONTRACT: a plan's result is exactly the general path's (`decode_record` + `expect`): the same
`ChangeEvent` (the row decoded in place, the same `DecodeError` messages in the same order), and
the same `Expectation` (item, key, unavailable/TOAST list, missing and unmapped columns, drift
attributes, too_deep) or `Unmappable` with the same reason. It calls the same decoder and
converter functions the general path compiled for the columns; only the walking is generated.
Where it has no plan (JSON without schemas, a schema whose plan failed to compile) or the event
is not a row change of the plan's own table, it decodes the general way and leaves the
expectation to `expect` (the result then says None). tests/unit/test_plan.py holds the two paths
equal over generated rows; the general path stays the oracle.

Generated source is built only from the mapping config and the schema's field names, and every
such name enters the source as a `repr()` string literal, never as raw text; the functions and
objects it calls are passed in its namespace under names this module makes up (`d0`, `c1`, ...).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final

from parity.core import mapping, types
from parity.core.config import ColumnRule
from parity.core.errors import DecodeError, MappingError
from parity.core.events import (
    _NEEDS_AFTER,
    _TYPE_NAMES,
    _VALUE_ERRORS,
    UNAVAILABLE,
    Decoded,
    Row,
    Skip,
    _as_bytes,
    _plain_hints,
    _RowDecoder,
    _Schema,
    _split,
    change_event,
    decode_record,
    envelope_head,
)
from parity.core.expect import TOO_DEEP, Expectation, Unmappable, finish
from parity.core.mapping import (
    MAX_PARTITION_KEY_BYTES,
    MAX_SORT_KEY_BYTES,
    ItemMapper,
    _format_field,
    _Missing,
    _size_bound,
    render,
)
from parity.core.types import PLACEHOLDER
from parity.core.values import _DYNAMO, MAX_ITEM_BYTES, Item, item_size, number, value_size

__all__ = ["Planner", "RowPlan", "compile_row_plan"]

# (row, where, build) -> (the decoded row, None | (item, key, unavailable, nested) | the MappingError or
# RecursionError that made the row unmappable). Raises DecodeError for a row that does not decode.
RowPlan = Callable[[Any, str, bool], tuple[Row, Any]]

_CACHE_LIMIT: Final = 512


class _Source:
    """Lines of generated Python with indentation."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 0

    def add(self, line: str) -> None:
        self.lines.append("    " * self.depth + line)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def compile_row_plan(rows: _RowDecoder, mapper: ItemMapper) -> RowPlan | None:
    """The generated function for rows decoded by `rows` and mapped by `mapper`; None when this
    module has no plan for them (a schemaless decoder, which also rewrites unknown columns)."""
    if rows.known is not None:
        return None
    ns: dict[str, Any] = {
        "DecodeError": DecodeError,
        "MappingError": MappingError,
        "VALUE_ERRORS": _VALUE_ERRORS,
        "U": UNAVAILABLE,
        "render": render,
        "format_field": _format_field,
        "value_size": value_size,
        "item_size": item_size,
        "MAX_ITEM_BYTES": MAX_ITEM_BYTES,
        "Decimal": Decimal,
        "key_value": mapper._key_value,
        "Missing": _Missing,
        "PLACEHOLDER": PLACEHOLDER,
        "UTC": dt.UTC,
        "DT": dt.datetime,
        "fromisoformat": dt.datetime.fromisoformat,
        "number": number,
        "DYNAMO": _DYNAMO,
        "ZERO": Decimal(0),
        "INT_LIMIT": 10**38,
    }
    src = _Source()
    src.add("def row_plan(raw, where, build):")
    src.depth = 1
    src.add("if type(raw) is not dict:")
    src.add("    raise DecodeError(where + ' is not an object')")
    src.add("get = raw.get")
    # Decoding, as _RowDecoder.decode: converters in order, then the identity columns' types.
    if rows.converters or rows.checked:
        src.add("name = ''")
        src.add("try:")
        src.depth = 2
        for i, (name, decode) in enumerate(rows.converters):
            ns[f"d{i}"] = decode
            src.add(f"name = {name!r}")
            src.add(f"v = get({name!r})")
            src.add("if v is not None:")
            src.depth += 1
            _decode_value(src, name, decode, f"d{i}")
            src.depth -= 1
        for name, types in rows.checked:
            src.add(f"name = {name!r}")
            src.add(f"v = get({name!r})")
            if any(t not in (int, float, bool) for t in types):
                return None  # not a type this generator writes by name
            test = " and ".join(f"type(v) is not {t.__name__}" for t in types)
            src.add(f"if v is not None and {test}:")
            src.add(f"    raise TypeError({'expected ' + _TYPE_NAMES[types] + ', got '!r} + type(v).__name__)")
        src.depth = 1
        src.add("except VALUE_ERRORS as exc:")
        src.add("    raise DecodeError(where + '.' + name + ': ' + str(exc)) from None")
    src.add("if not build:")
    src.add("    return raw, None")
    src.add("try:")
    src.depth = 2
    _expected_parts(src, ns, mapper)
    src.depth = 1
    src.add("except MappingError as exc:")
    src.add("    return raw, exc")
    src.add("except RecursionError as exc:")
    src.add("    return raw, exc")
    # The names in `ns` are this module's own; the text holds config and schema names only as
    # repr() literals (see the module docstring), so exec runs nothing a record or config wrote.
    exec(compile(src.text(), f"<parity row plan {mapper.mapping.source}>", "exec"), ns)  # noqa: S102
    fn: RowPlan = ns["row_plan"]
    return fn


def _expected_parts(src: _Source, ns: dict[str, Any], mapper: ItemMapper) -> None:
    """The body of `ItemMapper.expected_parts` for this mapper, unrolled (same order, same messages)."""
    src.add("item = {}")
    src.add("unav = []")
    # `deep`: whether a value that may be a map or list went in (then the nesting is checked).
    src.add("deep = False")
    # `text` and `other`: what mapping._size_bound adds for the values beyond their names and the
    # 21 bytes of a number or flag; the names and those 21 are the constant `fixed` (below). Values
    # later replaced (a key attribute named like a column) stay counted: the bound only grows,
    # and it only decides whether the exact size is computed.
    src.add("text = 0")
    src.add("other = 0")
    names: list[str] = []
    for i, plan in enumerate(mapper._columns):
        ns[f"c{i}"] = plan.convert
        col, attr = plan.column, plan.attribute
        prefix = f"column {col!r} (attribute {attr!r}): "
        src.add(f"v = get({col!r}, U)")
        src.add("if v is U:")
        src.add(f"    unav.append({attr!r})")
        empty = " or v == ''" if plan.empty_as_null else ""
        src.add(f"elif v is None{empty}:")
        src.add(f"    item[{attr!r}] = None" if plan.null_as_null else "    pass")
        src.add("else:")
        src.add("    try:")
        src.depth += 2
        _convert_value(src, plan.convert, mapper.mapping.columns[col], f"c{i}")
        if mapper.mapping.columns[col].type not in _SCALAR_TYPES:
            src.add("if type(v) is not str and type(v) is not Decimal:")
            src.add("    deep = True")
        src.depth -= 2
        src.add("    except MappingError as exc:")
        src.add(f"        raise MappingError({prefix!r} + str(exc)) from None")
        src.add("    except (ValueError, TypeError, ArithmeticError) as exc:")
        src.add(f"        raise MappingError({prefix!r} + type(exc).__name__ + ': ' + str(exc)) from None")
        names.append(attr)
        src.add("    t = type(v)")
        src.add("    if t is str or t is bytes:")
        src.add("        text += len(v)")
        src.add("    elif t is not Decimal and t is not bool:")
        src.add("        other += value_size(v)")
        if plan.empty_set_as is None:
            src.add(f"    item[{attr!r}] = v")
        else:
            src.add("    if v:")
            src.add(f"        item[{attr!r}] = v")
            if plan.empty_set_as == "null":
                src.add("    else:")
                src.add(f"        item[{attr!r}] = None")
            elif plan.empty_set_as == "empty_list":
                src.add("    else:")
                src.add(f"        item[{attr!r}] = []")
    # The key, as ItemMapper.key / _key_value / KeyTemplate.render.
    keys: list[str] = []
    for i, template in enumerate(mapper._keys):
        attr = template.attribute
        out = f"k{i}"
        keys.append(f"{attr!r}: {out}")
        texts: list[str] = []
        for j, part in enumerate(template.parts):
            if isinstance(part, str):
                texts.append(repr(part))
                continue
            column, spec = part
            _key_column(src, attr, column)
            if template.bare:
                ns[f"kc{i}"] = mapper._converters[column]
                src.add("try:")
                src.add(f"    {out} = kc{i}(v)")
                src.add("except MappingError as exc:")
                src.add(f"    raise MappingError({f'{attr}: column {column!r}: '!r} + str(exc)) from None")
                break
            text = f"t{i}_{j}"
            texts.append(text)
            message = f"{attr}: cannot format column {column!r} with {spec!r}: "
            src.add("try:")
            if spec:
                src.add(f"    {text} = format_field(v, {spec!r})")
            else:  # render(), with its two commonest types first
                src.add("    t = type(v)")
                src.add(f"    {text} = str(v) if t is int else v if t is str else render(v)")
            src.add("except (ValueError, TypeError) as exc:")
            src.add(f"    raise MappingError({message!r} + str(exc)) from None")
        if not template.bare:
            src.add(f"{out} = " + (" + ".join(texts) if texts else "''"))
        names.append(attr)
        src.add(f"if type({out}) is str or type({out}) is bytes:")
        src.add(f"    text += len({out})")
        limit = MAX_PARTITION_KEY_BYTES if i == 0 else MAX_SORT_KEY_BYTES
        src.add(f"if isinstance({out}, str):")
        src.add(f"    if not {out}:")
        src.add(f"        raise MappingError({f'key attribute {attr!r} is an empty string'!r})")
        src.add(f"    if len({out}.encode('utf-8')) > {limit}:")
        src.add(f"        raise MappingError({f'key attribute {attr!r} is over {limit} bytes'!r})")
        src.add(f"elif isinstance({out}, bytes):")
        src.add(f"    if not {out}:")
        src.add(f"        raise MappingError({f'key attribute {attr!r} is empty binary'!r})")
        src.add(f"elif not isinstance({out}, Decimal) or isinstance({out}, bool):")
        src.add(f"    raise MappingError({f'key attribute {attr!r} must be a string, number or binary'!r})")
    src.add("key = {" + ", ".join(keys) + "}")
    src.add("item.update(key)")
    # Indexes through the mapper's own code: the plan keeps their sparse-index rules by calling it.
    for i, template in enumerate(mapper._indexes):
        ns[f"ix{i}"] = template
        src.add("try:")
        src.add(f"    v = key_value(ix{i}, raw)")
        src.add("except Missing:")
        src.add("    pass  # sparse index: no GSI entry for this row")
        src.add("else:")
        src.add("    if v != '' and v != b'':")
        src.add("        if not isinstance(v, (str, bytes, Decimal)):")
        message = f"index attribute {template.attribute!r} must be a string, number or binary"
        src.add(f"            raise MappingError({message!r})")
        src.add(f"        item[{template.attribute!r}] = v")
        src.add("        if type(v) is str or type(v) is bytes:")
        src.add("            text += len(v)")
        names.append(template.attribute)
    fixed = sum(4 * len(n) + 21 for n in names) + _size_bound(dict(mapper.constants))
    if mapper.constants:
        ns["constants"] = mapper.constants
        src.add("item.update(constants)")
    src.add(f"if 4 * text + other + {fixed} > MAX_ITEM_BYTES and (size := item_size(item)) > MAX_ITEM_BYTES:")
    src.add("    raise MappingError(f'item is {size} bytes, over DynamoDB\\'s {MAX_ITEM_BYTES} byte limit')")
    for template in mapper._indexes:
        test = " or ".join(f"get({c!r}, U) is U" for c in template.columns) or "False"
        src.add(f"if {test}:")
        src.add(f"    unav.append({template.attribute!r})")
    src.add("return raw, (item, key, unav, deep)")


# Rule types whose converter never gives a map or a list (see parity.core.mapping._CONVERTERS).
_SCALAR_TYPES: Final = frozenset({
    "number", "string", "bool", "binary", "timestamp_iso", "timestamp_epoch_s", "timestamp_epoch_ms", "date_iso",
    "json_string", "string_set", "number_set",
})


def _decode_value(src: _Source, name: str, decode: Callable[[Any], Any], fn: str) -> None:
    """`raw[name] = decode(v)` for a non-null `v`; the commonest decoders written out (the same
    checks and messages as parity.core.types), any other one called."""
    if decode is types._text:
        src.add("if type(v) is not str:")
        src.add("    raise TypeError('expected text, got ' + type(v).__name__)")
        src.add("if v == PLACEHOLDER:")
        src.add(f"    raw[{name!r}] = U")
    elif decode is types._zoned_timestamp:
        src.add("if type(v) is not str:")
        src.add("    raise TypeError('expected an ISO timestamp, got ' + type(v).__name__)")
        src.add("v = fromisoformat(v)")
        src.add("if v.tzinfo is not None and v.tzinfo is not UTC:")
        src.add("    v = v.astimezone(UTC)")
        src.add(f"raw[{name!r}] = v")
    else:
        src.add(f"raw[{name!r}] = {fn}(v)")


# ISO text of an aware UTC datetime at a precision, as mapping._iso_at writes it (isoformat with
# `timespec`, "+00:00" as "Z"), by %-formatting, about twice as fast as isoformat(timespec=...).
_ISO_UTC: Final = {
    "s": "'%04d-%02d-%02dT%02d:%02d:%02dZ' % (v.year, v.month, v.day, v.hour, v.minute, v.second)",
    "ms": "'%04d-%02d-%02dT%02d:%02d:%02d.%03dZ' % (v.year, v.month, v.day, v.hour, v.minute, v.second,"
    " v.microsecond // 1000)",
    "us": "'%04d-%02d-%02dT%02d:%02d:%02d.%06dZ' % (v.year, v.month, v.day, v.hour, v.minute, v.second,"
    " v.microsecond)",
}


def _convert_value(src: _Source, convert: Callable[[Any], Any], rule: ColumnRule, fn: str) -> None:
    """`v = convert(v)`, with the commonest cases of the commonest converters written out (the
    same values as parity.core.mapping's converters); anything else calls `convert`."""
    if convert is mapping._auto:
        src.add("t = type(v)")
        src.add("if t is str:")
        src.add("    pass")
        src.add("elif t is int and -INT_LIMIT < v < INT_LIMIT:")  # number(Decimal(v)), exact below 38 digits
        src.add("    v = Decimal(v).normalize(DYNAMO) if v else ZERO")
        src.add("else:")
        src.add(f"    v = {fn}(v)")
    elif convert is mapping._to_number:
        src.add(f"v = number(v) if type(v) is Decimal else {fn}(v)")
    elif convert is render:
        src.add("if type(v) is not str:")
        src.add(f"    v = {fn}(v)")
    elif rule.precision is not None and rule.type in ("timestamp_iso", "auto"):
        src.add("if type(v) is DT and v.tzinfo is UTC:")
        src.add(f"    v = {_ISO_UTC[rule.precision]}")
        src.add("else:")
        src.add(f"    v = {fn}(v)")
    else:
        src.add(f"v = {fn}(v)")


def _key_column(src: _Source, attr: str, column: str) -> None:
    """`v` = the key column's value, or the MappingError ItemMapper.key raises for it."""
    src.add(f"v = get({column!r}, U)")
    src.add("if v is None:")
    src.add(f"    raise MappingError({f'key attribute {attr!r}: column {column!r} is NULL'!r})")
    src.add("if v is U:")
    src.add(f"    raise MappingError({f'key attribute {attr!r}: column {column!r} is not in the event'!r})")


class Planner:
    """Compiled plans of one table's mapping, one per row schema seen, and the decoding that uses
    them (`decode`). A schema the generator has no plan for is remembered as such, so it is not
    tried again per event."""

    def __init__(self, mapper: ItemMapper) -> None:
        self.mapper = mapper
        self.hints = mapper.mapping.columns
        # id(schema) -> (schema, its plan or None). The entry keeps the schema alive, so its id is
        # not reused by another schema while the entry exists.
        self._plans: dict[int, tuple[_Schema, RowPlan | None]] = {}

    def plan(self, schema: _Schema | None) -> RowPlan | None:
        if schema is None or schema.rows is None:
            return None
        entry = self._plans.get(id(schema))
        if entry is not None and entry[0] is schema:
            return entry[1]
        try:
            fn = compile_row_plan(schema.rows, self.mapper)
        except (SyntaxError, ValueError, TypeError, KeyError, RecursionError):
            fn = None  # the general path handles this schema (and it is not compiled again)
        if len(self._plans) >= _CACHE_LIMIT:
            self._plans.clear()
        self._plans[id(schema)] = (schema, fn)
        return fn

    def decode(
        self, topic: str, key: bytes | None, value: bytes | None, *, skip_snapshot: bool = False
    ) -> tuple[Decoded, Expectation | Unmappable | None]:
        """`decode_record(topic, key, value, mapping.columns)` and, for a row change of this
        table, `expect(mapper, event)`; None instead of the expectation when the general
        `expect` is to decide it (no plan, not a row change, another table's event) or when
        `skip_snapshot` and the event is a snapshot row (it is skipped, never mapped).

        Mirrors `decode_record` step by step (the same errors in the same order)."""
        if value is None:
            return decode_record(topic, key, value, self.hints), None
        hints = self.hints
        payload, schema = _split(_as_bytes(value, "value"), "value", hints, "envelope", topic)
        if type(payload) is not dict:
            raise DecodeError("value is not a Debezium envelope: payload is not an object")
        head = envelope_head(topic, payload, schema)
        if isinstance(head, Skip):
            return head, None
        op, op_text, src, source = head
        before_raw, after_raw = payload.get("before"), payload.get("after")
        parts: Any = None
        fn = self.plan(schema)
        if fn is None:
            rows = schema.rows if schema is not None and schema.rows is not None else _plain_hints(hints)[1]
            before = None if before_raw is None else rows.decode(before_raw, "before")
            after = None if after_raw is None else rows.decode(after_raw, "after")
        else:
            before = None if before_raw is None else fn(before_raw, "before", False)[0]
            if after_raw is None:
                after = None
            else:
                marker = src.get("snapshot")
                # Leniently read here; snapshot_marker below raises for a bad marker, and then
                # the expectation built here is never used.
                snapshot_row = not (marker is None or marker is False or marker == "false")
                build = (
                    op in _NEEDS_AFTER
                    and source == self.mapper.mapping.source
                    and not (skip_snapshot and snapshot_row)
                )
                after, parts = fn(after_raw, "after", build)
        event = change_event(op, op_text, source, src, key, hints, topic, before, after)
        if parts is None or after is None:
            return event, None
        if isinstance(parts, MappingError):
            return event, Unmappable(str(parts))
        if isinstance(parts, RecursionError):
            return event, Unmappable(TOO_DEEP)
        expected: Item
        expected, item_key, unavailable, deep = parts
        return event, finish(self.mapper, after, expected, item_key, unavailable, nested=deep)
