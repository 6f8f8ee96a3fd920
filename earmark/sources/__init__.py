"""Where dataset items come from: folders, zip archives, tar / WebDataset shards, Parquet files,
``datasets.save_to_disk`` folders, locally or at fsspec URLs.

A source is split into :class:`Part` s, the units of work (one audio file, one shard, one Parquet
or Arrow file). :func:`iter_part` reads a part and yields its :class:`ItemData`, each with a stable
identifier for the report. Nothing is ever extracted to disk; members are read into memory with size
limits, and a hostile member (unsafe path, absurd size, compression bomb, truncated shard) becomes an
item carrying an error instead of an exception.
"""

from earmark.sources.containers import Limits, iter_part
from earmark.sources.discover import Part, Skipped, discover, expand_braces
from earmark.sources.items import ItemData

__all__ = ["ItemData", "Limits", "Part", "Skipped", "discover", "expand_braces", "iter_part"]
