"""Assign every trainable tensor to exactly one group by ordered fnmatch patterns.

Groups are tried in config order and, within a group, patterns in order; the
first match wins, so a broad catch-all group can come last. A trainable name no
pattern matches, a group that matches nothing, or a pattern that matches no
trainable name (a typo beside patterns that do match) is a config error that
names them: silently ungoverned parameters would defeat the point.
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase

from govtrain.governance.config import GroupConfig
from govtrain.governance.errors import TaxonomyError


def group_of(name: str, groups: Iterable[GroupConfig]) -> str | None:
    """The first group whose patterns match `name`, or None."""
    for group in groups:
        if any(fnmatchcase(name, p) for p in group.patterns):
            return group.name
    return None


def assign(names: Iterable[str], groups: tuple[GroupConfig, ...]) -> dict[str, str]:
    """Map every parameter name to its group name, or raise TaxonomyError."""
    mapping: dict[str, str] = {}
    unassigned: list[str] = []
    for name in names:
        group = group_of(name, groups)
        if group is None:
            unassigned.append(name)
        else:
            mapping[name] = group
    if unassigned:
        shown = ", ".join(unassigned[:20]) + (" ..." if len(unassigned) > 20 else "")
        raise TaxonomyError(
            f"{len(unassigned)} trainable parameter(s) match no group pattern: {shown}"
        )
    empty = [g.name for g in groups if g.name not in set(mapping.values())]
    if empty:
        raise TaxonomyError(f"group(s) matching no parameter: {', '.join(empty)}")
    for group in groups:
        for pattern in group.patterns:
            if not any(fnmatchcase(name, pattern) for name in mapping):
                raise TaxonomyError(
                    f"governance.groups.{group.name}: pattern {pattern!r} matches no "
                    "trainable parameter"
                )
    return mapping
