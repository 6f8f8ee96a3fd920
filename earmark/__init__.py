"""earmark: find a label's recordings inside AI training datasets.

The public API lives in the subpackages; the layers depend one way::

    cli -> scan -> catalogue -> index -> fingerprint -> audio
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("earmark")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
