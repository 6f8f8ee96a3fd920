"""Fingerprint families behind one interface, in an explicit registry."""

from earmark.fingerprint import chromaprint
from earmark.fingerprint.base import FORMAT_VERSION, Fingerprint, params_id

#: family name -> module with ``extract_blocks(blocks, config)`` and a config class.
FAMILIES = {chromaprint.FAMILY: chromaprint}

__all__ = ["FAMILIES", "FORMAT_VERSION", "Fingerprint", "chromaprint", "params_id"]
