"""Licences a catalogue records: who may use which recordings in which datasets, and when."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass


@dataclass(frozen=True)
class Licence:
    """Permission for a licensee to use recordings in datasets whose name matches ``dataset_pattern``.

    ``track_ids`` empty means every recording of the catalogue. Dates are ISO ``YYYY-MM-DD`` (inclusive;
    empty = open-ended).
    """

    licence_id: int
    licensee: str
    dataset_pattern: str
    track_ids: tuple[str, ...] = ()
    start: str = ""
    end: str = ""
    territory: str = ""
    note: str = ""

    def covers(self, track_id: str, dataset: str, date: str) -> bool:
        """Whether this licence covers ``track_id`` in ``dataset`` on ``date`` (``YYYY-MM-DD``)."""
        if self.track_ids and track_id not in self.track_ids:
            return False
        if not fnmatch.fnmatchcase(dataset, self.dataset_pattern):
            return False
        return (not self.start or self.start <= date) and (not self.end or date <= self.end)
