"""Claims: one genome is trained by one trial only, across every worker."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from ..run import atomic_write_text, flocked
from ._store import database_url

__all__ = ["Claims", "FileClaims", "TableClaims", "open_claims"]


class Claims(Protocol):
    def claim(self, key: str, number: int, is_dead: Callable[[int], bool]) -> int:
        """Atomically record trial ``number`` as the one that trains genome ``key``, unless
        a trial that ``is_dead`` does not reject holds it; return the holder afterwards."""


class FileClaims:
    """Claims as files under one ``flock`` (journal storage: every worker on this machine)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def claim(self, key: str, number: int, is_dead: Callable[[int], bool]) -> int:
        with flocked(self.folder / ".lock"):
            path = self.folder / key
            if path.exists():
                owner = int(path.read_text(encoding="utf-8"))
                if owner == number or not is_dead(owner):
                    return owner
            atomic_write_text(path, str(number))
            return number


class TableClaims:
    """Claims as rows with a unique key in the study's database (RDB storage: workers on
    several machines); an insert that collides tells the worker who got there first."""

    TABLE = "mogaqnn_genome_claims"

    def __init__(self, url: str, study_name: str) -> None:
        import sqlalchemy as sa

        self._sa, self.study = sa, study_name
        self.engine = sa.create_engine(database_url(url), pool_pre_ping=True)
        meta = sa.MetaData()
        self.table = sa.Table(
            self.TABLE, meta,
            sa.Column("study", sa.String(512), primary_key=True),
            sa.Column("genome_key", sa.String(64), primary_key=True),
            sa.Column("trial_number", sa.Integer, nullable=False),
        )  # fmt: skip
        try:
            meta.create_all(self.engine)
        except sa.exc.DBAPIError:  # another worker created it at the same moment
            if not sa.inspect(self.engine).has_table(self.TABLE):
                raise

    def claim(self, key: str, number: int, is_dead: Callable[[int], bool]) -> int:
        sa, t = self._sa, self.table
        mine = (t.c.study == self.study) & (t.c.genome_key == key)
        while True:
            try:
                with self.engine.begin() as c:
                    c.execute(t.insert().values(study=self.study, genome_key=key,
                                                trial_number=number))  # fmt: skip
                return number
            except sa.exc.IntegrityError:
                pass
            with self.engine.connect() as c:
                owner = c.execute(sa.select(t.c.trial_number).where(mine)).scalar()
            if owner is None:
                continue
            if owner == number or not is_dead(owner):
                return owner
            with self.engine.begin() as c:  # compare-and-set: take over from the dead trial
                r = c.execute(t.update().where(mine & (t.c.trial_number == owner))
                              .values(trial_number=number))  # fmt: skip
            if r.rowcount == 1:
                return number


def open_claims(storage_url: str, study_name: str, folder: Path) -> Claims:
    if storage_url.startswith("journal:"):
        return FileClaims(folder)
    return TableClaims(storage_url, study_name)
