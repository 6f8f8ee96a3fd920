"""The methods section of a report: how matches are decided, how well that works, and its limits."""

from __future__ import annotations

import json
from importlib import resources

LIMITATIONS = (
    "Only registered catalogue recordings are searched. Absence of a match is not absence of the work; "
    "the recall figures per transformation bound the miss rate.",
    "A match shows presence in the dataset snapshot scanned, not use in training or memorisation by a model.",
    "earmark identifies the sound recording (the master). It does not detect covers, interpolations or "
    "compositions. Remasters and edits that share audio match each other.",
    "This version compares Chromaprint fingerprints without time or pitch correction: pitch-shifted, "
    "sped-up or time-stretched copies beyond a few percent, copies under other music or speech, reverberant "
    "copies and clips shorter than about 5 seconds are mostly not found (see the recall table).",
    "Items that could not be decoded are listed with the reason; they were not searched.",
    "Where a recording repeats a passage, a copy of it matches each repetition; the places beyond the "
    "strongest are marked as alternatives and counted once in coverage.",
)


def validation() -> dict:
    """The benchmark figures measured for this version (shipped with the package)."""
    return json.loads(resources.files("earmark.report").joinpath("validation.json").read_text())


def methods_section(manifest: dict, catalogue_stats: dict) -> dict:
    """Everything the methods section states, as data (rendered by the HTML report, kept as JSON)."""
    settings = manifest.get("settings", {})
    match = settings.get("match", {})
    null = settings.get("null", {})
    return {
        "method": (
            "Each item is decoded to 11025 Hz mono and fingerprinted with Chromaprint (libchromaprint "
            f"{manifest.get('versions', {}).get('libchromaprint', '?')}): a 32-bit code every 0.124 s. "
            "Candidate alignments with catalogue recordings are retrieved with an exact FAISS Hamming "
            "search over one-second windows, then every candidate is verified over its whole aligned span."
        ),
        "decision": {
            "false-match probability at most (max_fmp)": match.get("max_fmp"),
            "bit error rate at most (max_ber)": match.get("max_ber"),
            "contrast with chance agreement at least (min_contrast)": match.get("min_contrast"),
            "evidence items at least (min_items)": match.get("min_items"),
            "null-model inflation factor": null.get("inflation"),
        },
        "score": (
            "score = -log10(false-match probability): the probability that an alignment at least this "
            "strong arises by chance between this item and any registered recording, under a null model "
            "of independent bits corrected for the number of alignments tried (docs/matching.md)."
        ),
        "parameters_id": manifest.get("params_id"),
        "catalogue": catalogue_stats,
        "validation": validation(),
        "limitations": list(LIMITATIONS),
    }
