"""Read a HyperPyYAML file (CosyVoice2's ``cosyvoice2.yaml``) as plain data.

DESIGN: the reference instantiates objects straight from the yaml (``!new:``, ``!name:``, ``!apply:``)
and cross-references values (``!ref <key>``, with arithmetic such as ``<a> * <b>``). The exporter only
needs the values, so object tags become :class:`Tagged` records (the tag plus the constructor arguments),
``!apply:`` calls are never run, and references are resolved after parsing into the values they name.
Only ``yaml.SafeLoader`` is used and reference arithmetic goes through a tiny AST evaluator: a yaml file
can never run code here.
"""

from __future__ import annotations

import ast
import operator
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

__all__ = ["Tagged", "Ref", "load", "loads", "HyperYamlError"]


class HyperYamlError(ValueError):
    pass


@dataclass
class Tagged:
    """An object tag (``!new:mod.Class``, ``!name:mod.func``, ``!apply:mod.func``) and its arguments."""

    kind: str  # "new" | "name" | "apply"
    target: str  # dotted name after the colon
    args: Any = field(default_factory=dict)  # mapping (kwargs), list (positional) or None

    def get(self, key: str, default: Any = None) -> Any:
        if isinstance(self.args, dict):
            return self.args.get(key, default)
        return default

    def __getitem__(self, key: str) -> Any:
        if not isinstance(self.args, dict) or key not in self.args:
            raise KeyError(f"{self.target}: no argument {key!r}")
        return self.args[key]

    def __contains__(self, key: str) -> bool:
        return isinstance(self.args, dict) and key in self.args


@dataclass
class Ref:
    """An unresolved ``!ref`` expression such as ``<sample_rate>`` or ``<a> * <b>``."""

    expr: str


class _Loader(yaml.SafeLoader):
    pass


def _construct_args(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    value = loader.construct_scalar(node)
    return None if value in ("", None) else value


def _multi(kind: str):
    def construct(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Tagged:
        return Tagged(kind, suffix, _construct_args(loader, node))

    return construct


for _kind in ("new", "name", "apply", "module", "copy"):
    _Loader.add_multi_constructor(f"!{_kind}:", _multi(_kind))


def _construct_ref(loader: yaml.SafeLoader, node: yaml.Node) -> Ref:
    return Ref(str(loader.construct_scalar(node)))


_Loader.add_constructor("!ref", _construct_ref)

# HyperPyYAML (like YAML 1.2) reads "1e-06" and "1e-5" as floats; PyYAML's 1.1 resolver would need a dot.
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)

_REF_RE = re.compile(r"<([^<>]+)>")
_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}


def _arith(expr: str) -> Any:
    """Evaluate numbers combined with + - * / // % ** and parentheses; nothing else."""

    def ev(n: ast.AST) -> Any:
        if isinstance(n, ast.Expression):
            return ev(n.body)
        if isinstance(n, ast.Constant) and isinstance(n.value, (int, float)):
            return n.value
        if isinstance(n, ast.BinOp) and type(n.op) in _BINOPS:
            return _BINOPS[type(n.op)](ev(n.left), ev(n.right))
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, (ast.USub, ast.UAdd)):
            v = ev(n.operand)
            return -v if isinstance(n.op, ast.USub) else v
        raise HyperYamlError(f"unsupported expression in !ref: {expr!r}")

    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError as e:
        raise HyperYamlError(f"bad !ref expression {expr!r}: {e}") from None
    return ev(tree)


def _lookup(root: dict, path: str) -> Any:
    # "<a>" or "<a[b][c]>" (HyperPyYAML's item syntax) or "<a.b>".
    parts = re.findall(r"[^.\[\]]+", path.strip())
    if not parts:
        raise HyperYamlError(f"empty !ref <{path}>")
    cur: Any = root
    for p in parts:
        if isinstance(cur, Tagged):
            cur = cur.args
        if isinstance(cur, dict) and p in cur:
            cur = cur[p]
        elif isinstance(cur, list) and p.isdigit() and int(p) < len(cur):
            cur = cur[int(p)]
        else:
            raise HyperYamlError(f"!ref <{path}>: no such key")
    return cur


def _resolve(value: Any, root: dict, stack: tuple = ()) -> Any:
    if isinstance(value, Ref):
        expr = value.expr.strip()
        if expr in stack:
            raise HyperYamlError(f"circular !ref {expr}")
        names = _REF_RE.findall(expr)
        if not names:
            raise HyperYamlError(f"!ref without <name>: {expr!r}")
        if _REF_RE.fullmatch(expr):
            return _resolve(_lookup(root, names[0]), root, stack + (expr,))
        vals = {n: _resolve(_lookup(root, n), root, stack + (expr,)) for n in names}
        text = _REF_RE.sub(lambda m: repr(vals[m.group(1)]), expr)
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals.values()):
            return _arith(text)
        if all(isinstance(v, str) for v in vals.values()):
            return _REF_RE.sub(lambda m: vals[m.group(1)], expr)  # string interpolation
        raise HyperYamlError(f"cannot combine non-numeric values in !ref {expr!r}")
    if isinstance(value, Tagged):
        return Tagged(value.kind, value.target, _resolve(value.args, root, stack))
    if isinstance(value, dict):
        return {k: _resolve(v, root, stack) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, root, stack) for v in value]
    return value


def loads(text: str, overrides: dict | None = None) -> dict:
    """Parse HyperPyYAML text into plain data; ``overrides`` replace top-level keys before resolution."""
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 -- SafeLoader subclass
    except yaml.YAMLError as e:
        raise HyperYamlError(f"yaml: {e}") from None
    if not isinstance(data, dict):
        raise HyperYamlError("top level is not a mapping")
    if overrides:
        data.update(overrides)
    return _resolve(data, data)


def load(path: str, overrides: dict | None = None) -> dict:
    with open(path, encoding="utf-8") as f:
        return loads(f.read(), overrides)


def section(v: Any, what: str) -> dict:
    """A yaml constructor-argument mapping: None gives {}, a dict itself, a Tagged-like record its
    ``.args``; anything else is a ValueError naming ``what`` ("flow", "hift")."""
    if v is None:
        return {}
    if hasattr(v, "args") and not isinstance(v, dict):
        v = v.args
    if not isinstance(v, dict):
        raise ValueError(f"{what} config: expected a mapping, got {type(v).__name__}")
    return v
