"""One declarative description per configuration field: validation, TOML, overrides, docs.

A configuration dataclass declares each field once, with :func:`param`::

    @dataclass(frozen=True)
    class TileConfig:
        rows: int = param(512, doc="array rows (= inputs) per tile", lo=1, hi=1 << 16)

        def __post_init__(self) -> None:
            check_fields(self, "tile")

and everything else is read off that declaration by the generic code in this module:

* :func:`check_fields` validates on construction (one error format: ``owner.field = value is
  invalid; allowed: …``), accepting NumPy scalars of the right kind and storing them as
  Python ``int``/``float``;
* :func:`from_mapping` / :func:`to_mapping` map a config (nested dataclasses included) to and
  from plain tables (TOML, JSON), one-to-one, rejecting unknown keys with the nearest valid
  name suggested; :func:`dumps_toml` writes TOML;
* :func:`parse_override` and :func:`apply_overrides` implement ``--set a.b=value`` for every
  config;
* :func:`field_rows` / :func:`markdown_table` generate the reference tables of the docs.

Conventions: TOML has no null, so an optional field (``optional=True``) is ``None`` in
Python and the string ``"none"`` (any case) in TOML and overrides. An integer given for a
float field is a float; a float for an integer field, or a bool for a number, is an error.

Cross-field rules (e.g. ``stuck_on + stuck_off <= 1``) stay hand-written in the class's
``__post_init__``, after :func:`check_fields`, and raise through :func:`fail` so their
messages have the same form.

This module is a foundation of the package, like :mod:`analogsim.seeding`: it imports
nothing from it.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import json
import math
import os
import stat
import textwrap
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Spec", "param", "check_fields", "fail", "spec_of", "specs", "from_mapping",
           "to_mapping", "coerce", "parse_literal", "parse_override", "apply_overrides",
           "dumps_toml", "toml_value", "unknown_key", "field_rows", "markdown_table", "NONE",
           "text_param", "field_names", "loads_toml"]

#: How ``None`` is spelled in TOML files and overrides (compared case-insensitively).
NONE = "none"

KINDS = ("int", "float", "bool", "str", "ints", "strs", "table")


def fail(owner: str, name: str, value: Any, allowed: str) -> None:
    """Raise the one error format: ``owner.name = value is invalid; allowed: …``."""
    where = f"{owner}.{name}" if owner else name
    raise ValueError(f"{where} = {value!r} is invalid; allowed: {allowed}")


def _interval(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    return f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"


@dataclass(frozen=True)
class Spec:
    """What one field may hold, its unit, its one-line doc and where its default comes from.

    ``kind`` is one of :data:`KINDS`: ``ints`` is a tuple of integers (each in
    ``[lo, hi]``, at least ``min_len`` of them), ``strs`` a tuple of non-empty strings (at
    least ``min_len``), ``table`` a mapping of options.
    """

    doc: str
    kind: str
    unit: str = ""
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple[str, ...] | None = None
    optional: bool = False
    allow_inf: bool = False
    min_len: int = 0
    source: str = ""
    allowed_text: str = ""

    def allowed(self) -> str:
        """The ``allowed: …`` text of this field's error messages and docs."""
        if self.allowed_text:
            text = self.allowed_text
        elif self.choices is not None:
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        elif self.kind == "bool":
            text = "true or false"
        elif self.kind == "str":
            text = "a non-empty string"
        elif self.kind == "table":
            text = "a table of options"
        elif self.kind == "strs":
            text = f"a list of >= {self.min_len} non-empty strings"
        elif self.kind == "ints":
            text = (f"a list of >= {self.min_len} integers in "
                    f"{_interval(self.lo, self.hi, False, False)}")
        else:
            noun = "an integer" if self.kind == "int" else "a real number"
            text = noun if self.lo is None and self.hi is None else \
                f"{noun} in {_interval(self.lo, self.hi, self.lo_open, self.hi_open)}"
            text += " or inf" if self.allow_inf else ""
        return text + (f" or {NONE}" if self.optional else "")

    # ------------------------------------------------------------------ checking
    def check(self, owner: str, name: str, value: Any) -> Any:
        """Return ``value`` normalised (NumPy scalars → Python), or raise :func:`fail`."""
        if value is None and self.optional:
            return None
        ok, out = _KIND_CHECKS[self.kind](self, value)
        if not ok:
            fail(owner, name, value, self.allowed())
        return out

    def _in_range(self, v: float) -> bool:
        if self.lo is not None and (v < self.lo or (self.lo_open and v == self.lo)):
            return False
        return not (self.hi is not None and (v > self.hi or (self.hi_open and v == self.hi)))


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _check_int(spec: Spec, v: Any) -> tuple[bool, Any]:
    return (_is_int(v) and spec._in_range(int(v))), (int(v) if _is_int(v) else v)


def _check_float(spec: Spec, v: Any) -> tuple[bool, Any]:
    if not (_is_int(v) or isinstance(v, (float, np.floating))):
        return False, v
    f = float(v)
    if math.isnan(f) or (math.isinf(f) and not spec.allow_inf):
        return False, v
    if math.isinf(f):  # allow_inf admits inf beyond ``hi``; -inf only without a lower bound
        return (f > 0 or spec.lo is None), f
    return spec._in_range(f), f


def _check_bool(spec: Spec, v: Any) -> tuple[bool, Any]:
    return isinstance(v, (bool, np.bool_)), (bool(v) if isinstance(v, np.bool_) else v)


def _check_str(spec: Spec, v: Any) -> tuple[bool, Any]:
    if not isinstance(v, str) or not v:
        return False, v
    return (spec.choices is None or v in spec.choices), v


def _check_ints(spec: Spec, v: Any) -> tuple[bool, Any]:
    if isinstance(v, (str, bytes, Mapping)) or not isinstance(v, Iterable):
        return False, v
    items = list(v)
    ok = len(items) >= spec.min_len and all(_is_int(s) and spec._in_range(int(s))
                                            for s in items)
    return ok, (tuple(int(s) for s in items) if ok else v)


def _check_strs(spec: Spec, v: Any) -> tuple[bool, Any]:
    if isinstance(v, (str, bytes, Mapping)) or not isinstance(v, Iterable):
        return False, v
    items = list(v)
    ok = len(items) >= spec.min_len and all(isinstance(s, str) and s for s in items)
    return ok, (tuple(items) if ok else v)


def _check_table(spec: Spec, v: Any) -> tuple[bool, Any]:
    return isinstance(v, Mapping), v


_KIND_CHECKS = {"int": _check_int, "float": _check_float, "bool": _check_bool,
                "str": _check_str, "ints": _check_ints, "strs": _check_strs,
                "table": _check_table}


def param(default: Any = dataclasses.MISSING, *, doc: str, kind: str | None = None,
          unit: str = "", lo: float | None = None, hi: float | None = None,
          lo_open: bool = False, hi_open: bool = False, choices: Iterable[str] | None = None,
          optional: bool = False, allow_inf: bool = False, min_len: int = 0, source: str = "",
          allowed: str = "", default_factory: Any = dataclasses.MISSING,
          compare: bool = True, hash: bool | None = None) -> Any:
    """A dataclass field with its declaration (see the module doc).

    ``kind`` is inferred from the default (``bool``, ``int``, ``float``, ``str``, ``tuple`` →
    ints, ``dict`` → table) when not given; ``choices`` implies ``str``.
    """
    if kind is None:
        sample = default if default is not dataclasses.MISSING else default_factory()
        kind = ("str" if choices is not None else
                {bool: "bool", int: "int", float: "float", str: "str", tuple: "ints",
                 dict: "table"}.get(type(sample), ""))
    if kind not in KINDS:
        raise TypeError(f"param: kind = {kind!r} is invalid; allowed: {', '.join(KINDS)}")
    spec = Spec(doc=doc, kind=kind, unit=unit, lo=lo, hi=hi, lo_open=lo_open, hi_open=hi_open,
                choices=None if choices is None else tuple(choices), optional=optional,
                allow_inf=allow_inf, min_len=min_len, source=source, allowed_text=allowed)
    return dataclasses.field(default=default, default_factory=default_factory,
                             compare=compare, hash=hash, metadata={"spec": spec})


@dataclass(frozen=True)
class _TextSpec(Spec):
    """Free text: any string, the empty one included (the ``str`` kind refuses ``""``)."""

    def check(self, owner: str, name: str, value: Any) -> Any:
        if value is None and self.optional:
            return None
        if not isinstance(value, str):
            fail(owner, name, value, self.allowed())
        return value


def text_param(default: str = "", *, doc: str, optional: bool = False, source: str = "",
               compare: bool = True) -> Any:
    """A free-text dataclass field (a description, a note): any string, even empty.

    Declared like :func:`param` (validation, TOML, docs); only the check differs.
    """
    spec = _TextSpec(doc=doc, kind="str", optional=optional, source=source,
                     allowed_text="any string")
    return dataclasses.field(default=default, compare=compare, metadata={"spec": spec})


def spec_of(f: dataclasses.Field) -> Spec | None:
    """The declaration of a dataclass field (None for fields declared without :func:`param`)."""
    return f.metadata.get("spec")


def specs(cls_or_obj: Any) -> dict[str, Spec]:
    """``{field: Spec}`` of a config class or instance, in declaration order."""
    return {f.name: s for f in dataclasses.fields(cls_or_obj) if (s := spec_of(f))}


def check_fields(obj: Any, owner: str) -> None:
    """Validate every declared field of a frozen dataclass instance; normalise in place."""
    for name, spec in specs(obj).items():
        value = getattr(obj, name)
        out = spec.check(owner, name, value)
        if out is not value:
            object.__setattr__(obj, name, out)


# --------------------------------------------------------------------------- tables


def nearest(key: object, allowed: Iterable[str]) -> str | None:
    """The valid name closest to a misspelt ``key`` (None if nothing is close, or no key)."""
    near = difflib.get_close_matches(str(key), list(allowed), n=1, cutoff=0.6) if key else []
    return near[0] if near else None


def unknown_key(where: str, key: str, allowed: Iterable[str], what: str = "key") -> ValueError:
    """``ValueError`` for an unknown key, with the nearest valid name suggested."""
    allowed = list(allowed)
    near = nearest(key, allowed)
    hint = f" (did you mean {near!r}?)" if near else ""
    return ValueError(f"{where}: {what} {key!r} is unknown{hint}; allowed: " + ", ".join(allowed))


def field_names(cls_or_obj: Any, prefix: str = "") -> list[str]:
    """Every init field of a config, nested configs flattened as ``section.field`` (declared
    with :func:`param` or not): the names :func:`from_mapping` accepts, dotted."""
    names = []
    for f in dataclasses.fields(cls_or_obj):
        if not f.init:
            continue
        if _nested(f):
            sub = f.type if dataclasses.is_dataclass(f.type) else f.default_factory
            names += field_names(sub, f"{prefix}{f.name}.")
        else:
            names.append(prefix + f.name)
    return names


def coerce(spec: Spec, value: Any) -> Any:
    """Map a TOML/override value onto the Python value of a field, before validation:
    ``"none"`` (any case) → ``None`` for optional fields, an integer → float for floats,
    a list → tuple for integer and string lists."""
    if spec.optional and isinstance(value, str) and value.lower() == NONE:
        return None
    if spec.kind == "float" and _is_int(value):
        return float(value)
    if spec.kind in ("ints", "strs") and isinstance(value, list):
        return tuple(value)
    return value


def _nested(f: dataclasses.Field) -> bool:
    return dataclasses.is_dataclass(f.type) or (
        f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(
            f.default_factory))


def from_mapping(cls: type, data: Mapping[str, Any], *, where: str = "<config>",
                 base: Any = None) -> Any:
    """Build ``cls`` (a config dataclass) from a plain table, on top of ``base``.

    Keys are field names; a nested config is a sub-table; a missing key keeps ``base``'s
    value (the defaults without ``base``). Unknown keys and invalid values raise
    ``ValueError`` prefixed with ``where``.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: {data!r:.60} is invalid; allowed: a table")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    changes: dict[str, Any] = {}
    for key, value in data.items():
        if key not in fields:
            raise unknown_key(where, key, fields)
        f = fields[key]
        if _nested(f):
            sub_base = getattr(base, key) if base is not None else None
            sub_cls = type(sub_base) if sub_base is not None else f.default_factory
            if not isinstance(value, Mapping):
                raise ValueError(f"{where}: {key} = {value!r:.60} is invalid; allowed: a table "
                                 f"[{key}] with keys " + ", ".join(
                                     g.name for g in dataclasses.fields(sub_cls)))
            changes[key] = from_mapping(sub_cls, value, where=where, base=sub_base)
        else:
            spec = spec_of(f)
            changes[key] = coerce(spec, value) if spec is not None else value
    try:
        return dataclasses.replace(base, **changes) if base is not None else cls(**changes)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def to_mapping(obj: Any, *, drop_none: bool = True) -> dict[str, Any]:
    """A config as a nested plain table (tuples as lists; ``None`` dropped or kept)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            out[f.name] = to_mapping(value, drop_none=drop_none)
        elif value is None and drop_none:
            continue
        else:
            out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


# --------------------------------------------------------------------------- TOML text


#: Largest TOML file read (bytes): configs and sweep specs are a few kB.
TOML_MAX_BYTES = 4 << 20


def read_text_file(path: str | os.PathLike[str], what: str,
                   max_bytes: int = TOML_MAX_BYTES) -> str:
    """The UTF-8 text of ``path`` — only if it is a regular file (after symlinks) of at most
    ``max_bytes``: a FIFO would block, ``/dev/zero`` would never end. Errors name the file."""
    p = os.fspath(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} {p!r} does not exist") from None
    except OSError as exc:  # e.g. a name too long for the OS
        raise ValueError(f"{what} {p[:80]!r} cannot be read ({exc.strerror}); allowed: an "
                         "existing TOML file") from None
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{what} {p!r} is not a regular file; allowed: an existing TOML file")
    if st.st_size > max_bytes:
        raise ValueError(f"{what} {p!r} has {st.st_size} bytes; allowed: a TOML file of at "
                         f"most {max_bytes}")
    with open(p, "rb") as f:
        data = f.read(max_bytes + 1)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what} {p!r}: not UTF-8 text ({exc}); allowed: a TOML file"
                         ) from None


def loads_toml(text: str, *, source: str = "<string>") -> dict[str, Any]:
    """Parse a TOML document; a syntax error is a ``ValueError`` naming ``source``."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{source}: malformed TOML: {exc}") from None
    except RecursionError:  # tomllib recurses per nesting level: thousands exhaust the stack
        raise ValueError(f"{source}: malformed TOML: arrays or tables nested too deeply; "
                         "allowed: a few levels") from None


def toml_value(value: Any) -> str:
    """One TOML literal for a str / int / float / bool / None / list / table value."""
    if value is None:
        return json.dumps(NONE)
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if _is_int(value):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        text = repr(v)  # shortest round-trip form, e.g. 0.001, 1e-05, 100.0
        return text if any(c in text for c in ".e") else text + ".0"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} to TOML")


def _key(k: str) -> str:
    return k if k and all(c.isalnum() or c in "_-" for c in k) else json.dumps(k)


def dumps_toml(obj: Any, *, comment: str | None = None) -> str:
    """TOML text with every field of a config (nested configs as ``[tables]``)."""
    lines = [("# " + ln).rstrip() for ln in comment.splitlines()] + [""] if comment else []
    tables = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            tables.append((f.name, value))
        else:
            lines.append(f"{_key(f.name)} = {toml_value(value)}")
    for name, sub in tables:
        lines += ["", f"[{name}]"]
        lines += [f"{_key(g.name)} = {toml_value(getattr(sub, g.name))}"
                  for g in dataclasses.fields(sub)]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- overrides


def parse_literal(text: str) -> Any:
    """A TOML literal; a bare word (``stochastic``) or path (``nets/a.toml``) is a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        word = text.strip()
        if word and all(c.isalnum() or c in "_-./" for c in word):
            return word
        raise


def parse_override(item: object, example: str = "adc.bits=6", form: str = "key=value"
                   ) -> tuple[str, Any]:
    """Split ``"key.path=value"`` into the dotted key and the parsed TOML literal.

    ``form`` and ``example`` only word the error for an item without ``=``.
    """
    if not isinstance(item, str) or "=" not in item:
        raise ValueError(f"override {item!r} is invalid; allowed: {form!r} with a TOML "
                         f"literal value, e.g. {example!r}")
    key, _, raw = item.partition("=")
    try:
        return key.strip(), parse_literal(raw)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"override {item!r}: value {raw.strip()!r} is not a TOML literal "
                         f"({exc}); strings need quotes, e.g. \"soft\"") from None


def apply_overrides(obj: Any, overrides: Iterable[str], *, example: str = "adc.bits=6") -> Any:
    """Apply ``"a.b=value"`` strings to a config (values are TOML literals).

    All overrides are collected into one nested table and applied together with
    :func:`from_mapping` (so ``adc.bits=8 adc.out_bound=10`` works where each alone would
    not); a later override of the same field wins. Errors name the override.
    """
    if isinstance(overrides, str):
        raise TypeError("overrides must be a list of 'key=value' strings, not a single string")
    table: dict[str, Any] = {}
    items = list(overrides)
    for item in items:
        key, value = parse_override(item, example)
        node, parts = table, key.split(".")
        for part in parts[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ValueError(f"override {item!r}: {part!r} is a field, not a table")
            node = nxt
        node[parts[-1]] = value
    label = f"override {items[0]!r}" if len(items) == 1 else f"overrides {items}"
    return from_mapping(type(obj), table, where=label, base=obj)


# --------------------------------------------------------------------------- docs


def _default_text(f: dataclasses.Field, spec: Spec) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "(required)"
    if value is None:
        return NONE
    if isinstance(value, dict) and not value:
        return "{}"
    return toml_value(value)


def field_rows(cls: type, prefix: str = "") -> list[dict[str, str]]:
    """One row per declared field (nested configs flattened as ``section.field``)."""
    rows = []
    for f in dataclasses.fields(cls):
        if _nested(f):
            sub = f.type if dataclasses.is_dataclass(f.type) else f.default_factory
            rows += field_rows(sub, f"{prefix}{f.name}.")
            continue
        spec = spec_of(f)
        if spec is None:
            continue
        rows.append({"field": prefix + f.name, "default": _default_text(f, spec),
                     "unit": spec.unit, "allowed": spec.allowed(), "doc": spec.doc,
                     "source": spec.source})
    return rows


def markdown_table(cls: type, prefix: str = "", *, sources: bool = False) -> str:
    """A Markdown reference table of a config's fields (used to generate the docs)."""
    head = ["field", "default", "unit", "allowed", "meaning"] + (["source"] if sources else [])
    out = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in field_rows(cls, prefix):
        cells = [f"`{r['field']}`", f"`{r['default']}`", r["unit"], r["allowed"], r["doc"]]
        cells += [r["source"]] if sources else []
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- docstrings

__all__ += ["nearest", "numpydoc_params", "document_fields"]


def _type_text(spec: Spec) -> str:
    if spec.choices is not None:
        text = "{" + ", ".join(repr(c) for c in spec.choices) + "}"
    else:
        text = {"ints": "tuple of int", "strs": "tuple of str",
                "table": "dict"}.get(spec.kind, spec.kind)
    return text + (" or None" if spec.optional else "")


def numpydoc_params(cls: type, width: int = 88) -> str:
    """A numpydoc ``Parameters`` section generated from a config's declarations.

    Each entry is the field's doc, unit, allowed values, default and source; a nested
    config is listed with its class name and summary line.
    """
    lines = ["Parameters", "----------"]
    for f in dataclasses.fields(cls):
        spec = spec_of(f)
        if spec is None and _nested(f):
            sub = f.type if dataclasses.is_dataclass(f.type) else f.default_factory
            summary = (inspect.getdoc(sub) or "").partition("\n")[0]
            lines += [f"{f.name} : {sub.__name__}", f"    {summary}"]
            continue
        if spec is None:
            continue
        text = spec.doc[:1].upper() + spec.doc[1:] + "."
        text += f" Unit: {spec.unit}." if spec.unit else ""
        text += f" Allowed: {spec.allowed()}. Default: {_default_text(f, spec)}."
        text += f" Source: {spec.source}." if spec.source else ""
        lines.append(f"{f.name} : {_type_text(spec)}")
        lines += textwrap.wrap(text, width, initial_indent="    ", subsequent_indent="    ",
                               break_on_hyphens=False)
    return "\n".join(lines)


def document_fields(cls: type) -> type:
    """Class decorator: append :func:`numpydoc_params` to the class docstring.

    The per-field text then lives only in the :func:`param` declarations, yet ``help()``
    and numpydoc readers still see a ``Parameters`` section. Apply it above
    ``@dataclass``.
    """
    doc = inspect.cleandoc(cls.__doc__ or "")
    cls.__doc__ = (doc + "\n\n" if doc else "") + numpydoc_params(cls)
    return cls
