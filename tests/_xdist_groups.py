"""`--dist loadgroup` that keeps the tests of one xdist_group on one worker under pytest 9.2.

xdist's workers tell its scheduler a test's group by appending it to the test's node id,
which pytest 9.2 no longer lets them change (pytest-dev/pytest-xdist#1386): every test would
be scheduled alone. Here each worker writes the groups of its tests to a file in a folder
that the controller made, and the controller's scheduler reads them; a group in the node id
(an xdist that has the fix) still counts.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from xdist.scheduler import LoadGroupScheduling

KEY = "mogaqnn_xdist_groups"  # the folder, in each worker's workerinput
_FOLDER = pytest.StashKey[Path]()


def group_of(item: pytest.Item) -> str | None:
    """The item's xdist_group, named as xdist names it."""
    names = sorted(
        str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
        for mark in item.iter_markers("xdist_group")
    )
    return "_".join(names) or None


def folder(config: pytest.Config) -> Path:
    """The controller's folder of group files, made on first use."""
    if _FOLDER not in config.stash:
        config.stash[_FOLDER] = Path(tempfile.mkdtemp(prefix="mogaqnn-xdist-groups-"))
    return config.stash[_FOLDER]


def remove_folder(config: pytest.Config) -> None:
    if _FOLDER in config.stash:
        shutil.rmtree(config.stash[_FOLDER], ignore_errors=True)


def write_groups(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On a worker: the groups of its tests, for the controller."""
    where = getattr(config, "workerinput", {}).get(KEY)
    if where is None:
        return
    groups = {item.nodeid: g for item in items if (g := group_of(item)) is not None}
    path = Path(where) / f"{config.workerinput['workerid']}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(groups))
    tmp.replace(path)  # complete before the worker reports its collection


class GroupScheduling(LoadGroupScheduling):
    """Scopes are the groups the workers wrote, else what LoadGroupScheduling makes of the
    node id. Called once every worker has reported its collection, so the files are there."""

    def __init__(self, config: pytest.Config, log=None) -> None:
        super().__init__(config, log)
        self._folder = folder(config)
        self._groups: dict[str, str] | None = None

    def _split_scope(self, nodeid: str) -> str:
        if self._groups is None:
            self._groups = {}
            for path in sorted(self._folder.glob("*.json")):
                self._groups.update(json.loads(path.read_text()))
        return self._groups.get(nodeid) or super()._split_scope(nodeid)
