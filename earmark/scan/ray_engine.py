"""The distributed engine: the same per-part scan on a Ray cluster (``pip install earmark[ray]``).

An actor pool holds one catalogue reader per actor (loaded once, memory-mapped), and parts (files,
shards, tables) are handed to free actors as they come; results stream back to the driver, which
writes the report exactly as a local scan does. With no address, Ray starts on this machine.

On a real cluster every worker node needs earmark installed (with the ``ray`` extra), the system
Chromaprint library (Debian ``libchromaprint1``), the catalogue directory at the same path (a shared
filesystem) and the dataset reachable by the same URL (object storage, or a shared path).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from earmark.errors import ScanError
from earmark.scan.worker import ItemResult, ScanSettings, scan_part
from earmark.sources import Part


def _ray():
    try:
        import ray
    except ImportError as e:
        raise ScanError("the ray engine needs the ray extra: pip install 'earmark[ray]'") from e
    return ray


class _ScanActor:
    """Holds a catalogue reader; scans parts."""

    def __init__(self, catalogue: str, settings: ScanSettings):
        import faiss
        from threadpoolctl import threadpool_limits

        from earmark.catalogue.reader import open_reader

        faiss.omp_set_num_threads(1)
        threadpool_limits(1)
        self.reader = open_reader(catalogue)
        self.settings = settings

    def scan(self, part: Part, skip: frozenset[str]) -> list[ItemResult]:
        return scan_part(part, self.reader, self.settings, skip=skip)


def run_ray(
    tasks: Iterable[tuple[Part, frozenset[str]]],
    catalogue: str,
    settings: ScanSettings,
    *,
    workers: int,
    address: str | None = None,
) -> Iterator[list[ItemResult]]:
    """Scan ``tasks`` on Ray with ``workers`` actors, yielding each part's results as it finishes.

    Parameters
    ----------
    address : str, optional
        A Ray cluster address (``ray://host:10001``, ``auto``); a local Ray is started without it.
    """
    ray = _ray()
    from ray.util import ActorPool

    started_here = False
    if not ray.is_initialized():
        kwargs = {"address": address} if address else {"num_cpus": workers, "include_dashboard": False}
        try:
            ray.init(log_to_driver=False, configure_logging=False, **kwargs)
        except Exception as e:  # ray raises many types for an unreachable cluster
            raise ScanError(f"cannot start or reach Ray{' at ' + address if address else ''}: {e}") from e
        started_here = True
    try:
        actor = ray.remote(num_cpus=1)(_ScanActor)
        pool = ActorPool([actor.remote(catalogue, settings) for _ in range(workers)])
        yield from pool.map_unordered(lambda a, t: a.scan.remote(t[0], t[1]), tasks)
    finally:
        if started_here:
            ray.shutdown()
