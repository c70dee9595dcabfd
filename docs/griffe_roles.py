"""Griffe extension for the API reference: Sphinx cross-reference roles in bayesmix's
docstrings (``:func:`~bayesmix.load_spec```) become links to the documented object, or plain
code where the site does not document it.

Loaded by mkdocstrings (``extensions`` in mkdocs.yml). A target is resolved in the scope of
the object whose docstring names it, and the package's lazily imported names
(``bayesmix.fit_ml``) are mapped to the modules that define them, where the reference
documents them.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|attr|mod|data|exc|obj):`(~?)([^`]+)`")


def _lazy_names() -> dict[str, str]:
    """bayesmix's public names imported on first use, and the modules that define them."""
    import bayesmix

    return dict(getattr(bayesmix, "_LAZY", {}))


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles in every docstring of a package once it is loaded."""

    def __init__(self) -> None:
        super().__init__()
        self._lazy = _lazy_names()

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        for obj in _walk(pkg):
            if obj.docstring is not None and ":`" in obj.docstring.value:
                link = functools.partial(self._link, obj)
                obj.docstring.value = _ROLE.sub(link, obj.docstring.value)

    def _identifier(self, obj: griffe.Object, target: str) -> str:
        head, _, rest = target.partition(".")
        if head == "bayesmix" and rest:
            name, _, tail = rest.partition(".")
            if name in self._lazy:
                return ".".join(p for p in (self._lazy[name], name, tail) if p)
            return target
        scope = obj if obj.is_class or obj.is_module else obj.parent
        try:
            return scope.resolve(target) if scope is not None else target
        except (griffe.NameResolutionError, KeyError, ValueError):
            return target

    def _link(self, obj: griffe.Object, match: re.Match[str]) -> str:
        short, target = match.group(1) == "~", match.group(2).strip()
        text = target.rsplit(".", 1)[-1] if short else target
        identifier = self._identifier(obj, target)
        return f'<autoref identifier="{identifier}" optional><code>{text}</code></autoref>'


def _walk(obj: griffe.Object) -> list[griffe.Object]:
    """The object and every object it defines (not the names it imports)."""
    found = [obj]
    for member in obj.members.values():
        if not member.is_alias:
            found.extend(_walk(member))
    return found
