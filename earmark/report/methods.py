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
    "About one copy in seven with speech or louder music over it is missed; clipped, noisy, "
    "reverberant, pitch-shifted, sped-up, slowed and time-stretched copies mostly are found (see the "
    "recall table).",
    "A match found by Chromaprint (family 'chromaprint', or 'chromaprint+landmark') is a span whose "
    "bits agree far beyond chance; its false-match probability counts the independent alignments "
    "tried (neighbouring alignments share audio, and are counted in clumps of six). On non-catalogue "
    "audio it agrees with the observed rate of chance spans within a factor of 3 from 0.5 down to "
    "0.02; deeper, the only spans seen were unregistered recordings of the same artist that share "
    "material with registered ones (not chance, and kept out by the bit error rate threshold), and "
    "smaller values are bounds from the model.",
    "A match found by the mixture verifier alone (family 'mixture') covers the whole item at the "
    "recording's own speed and pitch: it is sought only where no other family placed anything, at "
    "alignments the Chromaprint and landmark indexes propose (and, for a recording found at one, "
    "over the whole recording, so that a repeated passage is placed where it agrees best). It finds "
    "whole copies under speech or "
    "louder music; a buried copy that fills only part of an item, or that was also sped up or "
    "pitch-shifted, is not found by it. Its false-match probability counts chance coincidences of "
    "spectral peaks, at each item and recording's own measured clumping; on non-catalogue audio it "
    "predicted up to 2.6 times more chance events than were seen from 1e-2 to 1e-5 on unrelated audio "
    "and up to 1.2 times fewer on same-artist audio, and smaller values are bounds from the model. "
    "Recordings of one artist that share material coincide far beyond chance: what keeps them out "
    "is the masking test (the item must be at least as loud wherever the recording has a loud "
    "peak), whose threshold was chosen on the public benchmark and confirmed on a second one.",
    "A match found by the spectral envelope alone (family 'envelope') covers the whole item: it is "
    "sought only where neither other family placed anything, at alignments the Chromaprint index "
    "proposes and at the recording's own timing, and the Chromaprint bits must also agree beyond chance "
    "there. It finds whole copies in reverberant rooms; a reverberant copy that fills only part of an "
    "item, or that was also sped up, is not found by it. It measures no pitch: its matches are reported "
    "at pitch 0, and a copy shifted by a semitone can be among them. Its false-match probability "
    "comes from a model calibrated on non-catalogue audio down to about 1e-4; smaller values are bounds "
    "from the model.",
    "A match found by the spectral landmarks alone (family 'landmark') is reported at the chance level "
    "(1e-6 by default) only when it keeps the recording's timing (untransformed or pitch-shifted) and "
    "covers at least half of the item: the item is then the recording, degraded. Alignments at another "
    "tempo or speed, or over a short stretch of a longer item, are reported only far below what chance "
    "explains (1e-80 by default): recordings of one artist can share passages (a theme, a loop, a "
    "shared ending), which no chance model covers, and this preset keeps every unregistered same-artist "
    "recording of the benchmark out. The false-match probability these decisions use (and the score) "
    "understates chance between pieces of music: on non-catalogue audio, alignments reaching 0.01 were "
    "seen about 8 times as often as it predicts and alignments reaching 1e-3 about 50 times as often, "
    "so below about 0.05 it ranks evidence rather than measuring a rate. Each match with landmark "
    "evidence therefore also gives empirical_fmp: the probability of landmark evidence this strong by "
    "chance, measured on the item itself (its chance alignments with the registered recordings it does "
    "not hold, extrapolated to this strength). On non-catalogue audio it agrees with the observed rate "
    "of chance alignments within a factor of 3 from 0.5 down to 0.02; by 1e-3 it is again too low (5 to "
    "8 items of about 1,400 reached it, 0.7 expected), so smaller values are extrapolations. It is weaker "
    "than the score for copies whose evidence is spread out (pitch-shifted copies, copies under "
    "speech), and it is not used to decide. On two "
    "benchmarks of about 900 items each, copies admitted at the chance level gave one match to a wrong "
    "recording (at 3e-7, beside the right one), more than the model predicts: a landmark-only match with "
    "a false-match probability above about 1e-10 is best re-checked (earmark verify-match) before it is "
    "relied on alone.",
    "A landmark match too short for that (an excerpt: at least 1.5 s of a recording, at its own speed "
    "and pitch, among other audio) is reported only when the recording's spectral peaks confirm it "
    "over the excerpt's extent (excerpt_fmp set): they coincide beyond chance (1e-6, counting every "
    "catalogue offset and every stretch the extent could choose), at least 75 % of them are found, and "
    "at most 5 % of the loud ones are missing where nothing in the item could hide them. Unregistered "
    "recordings of one artist that share a short passage with a registered one kept 55-67 % of its "
    "peaks with 5-10 % unmasked on the benchmarks; excerpts kept 83-99 % with at most 3 %. An excerpt "
    "under louder sound keeps fewer peaks and is not reported this way, and an excerpt is not reported "
    "where another recording's match already holds most of its stretch.",
    "The time factor and pitch shift are measured from the audio; their reading (speed, tempo, pitch) "
    "is an interpretation, since a speed change and a tempo change plus a pitch shift look alike.",
    "Items that could not be decoded are listed with the reason; they were not searched.",
    "Where a recording repeats a passage, a copy of it matches each repetition; the places beyond the "
    "strongest are marked as alternatives and counted once in coverage. When another place matches "
    "about as well (90 % of the evidence), the copy is listed under the places it may be at, not drawn "
    "at one of them.",
    "Where two registered recordings share audio (a remaster and its original, a version built on the "
    "same material) and both match one stretch of an item, the item is attributed to the one whose "
    "spectral peaks it follows where they differ; the other is listed as sharing the audio. Where the "
    "item's evidence does not separate them, the stronger match is named.",
    "A match's times are the copy's extent: its evidence span extended as far as the recording's "
    "spectral peaks keep being found in the item at the match's alignment, in steps of 0.25 s. The "
    "score and evidence are those of the evidence span.",
)


def validation() -> dict:
    """The benchmark figures measured for this version (shipped with the package)."""
    return json.loads(resources.files("earmark.report").joinpath("validation.json").read_text())


def methods_section(manifest: dict, catalogue_stats: dict) -> dict:
    """Everything the methods section states, as data (rendered by the HTML report, kept as JSON)."""
    settings = manifest.get("settings", {})
    match = settings.get("match", {})
    null = settings.get("null", {})
    landmarks = settings.get("landmarks", {})
    envelope = settings.get("envelope", {})
    mixture = settings.get("mixture", {})
    excerpt = settings.get("excerpt") or {}
    return {
        "method": (
            "Each item is decoded to 11025 Hz mono and searched with two fingerprint families; two verifiers "
            "check whole items neither family placed. "
            f"Chromaprint (libchromaprint {manifest.get('versions', {}).get('libchromaprint', '?')}): "
            "a 32-bit code every 0.124 s; candidate alignments are retrieved with an exact FAISS "
            "Hamming search over one-second windows and verified over the whole aligned span. "
            "Spectral landmarks: peaks on a log-frequency axis combined into triplets whose keys "
            "survive pitch, tempo and speed changes; votes over (recording, time factor, pitch shift, "
            "offset) give each alignment its factors and its evidence (distinct item peaks that "
            "agree). An alignment both families find is reported once. Spectral envelopes (24 mel "
            "bands every 0.093 s) are compared over the whole item at the alignments the Chromaprint "
            "index proposes, after smearing the recording with a short room decay: a copy in a "
            "reverberant room keeps its envelope when its fine structure is lost. Items still unplaced "
            "are checked peak by peak at the alignments both indexes propose: a copy under speech or "
            "louder music keeps many single spectral peaks, and is at least as loud wherever the "
            "recording has one. Shorter landmark alignments (excerpts inside other audio) are checked the "
            "same way over the excerpt alone."
        ),
        "decision": {
            "false-match probability at most (max_fmp)": match.get("max_fmp"),
            "bit error rate at most (max_ber)": match.get("max_ber"),
            "contrast with chance agreement at least (min_contrast)": match.get("min_contrast"),
            "evidence items at least (min_items)": match.get("min_items"),
            "null-model inflation factor": null.get("inflation"),
            "landmark-only copies keeping the recording's timing and covering half the item: "
            "false-match probability at most": landmarks.get("copy_fmp"),
            "other landmark-only matches: false-match probability at most": landmarks.get("max_fmp"),
            "landmark evidence merged into a Chromaprint match at most": landmarks.get("confirm_fmp"),
            "landmark null model dispersion": landmarks.get("dispersion"),
            "landmark matches cover at least (s, share of the item)": [landmarks.get("min_span_s"),
                                                                      landmarks.get("min_span_fraction")],
            "excerpts (shorter landmark matches): peak coincidence false-match probability at most":
                excerpt.get("max_fmp"),
            "excerpts: share of the recording's peaks found, at least": excerpt.get("min_rate"),
            "excerpts: share of loud recording peaks missing unmasked, at most": excerpt.get("max_unmasked"),
            "excerpts: recording peaks compared, at least": excerpt.get("min_peaks"),
            "envelope-only whole items: false-match probability at most": envelope.get("max_fmp"),
            "envelope-only whole items: Chromaprint agreement at the alignment, chance at most":
                envelope.get("corroborate_p"),
            "mixture-only whole items: false-match probability at most": mixture.get("max_fmp"),
            "mixture-only whole items: share of loud recording peaks missing unmasked, at most":
                mixture.get("max_unmasked"),
        },
        "score": (
            "score = -log10(false-match probability): the probability that an alignment at least this "
            "strong arises by chance between this item and any registered recording, under a null model "
            "of independent bits (Chromaprint), of chance peak coincidences at the item's own rate "
            "(landmarks), of chance correlation between envelopes (envelope) or of chance coincidences "
            "of single peaks at the item's own peak density (mixture), corrected for the "
            "number of alignments tried (docs/matching.md). For landmark evidence, empirical_fmp is the "
            "calibrated figure (see the limitations)."
        ),
        "parameters_id": manifest.get("params_id"),
        "landmark_parameters_id": manifest.get("landmark_params_id"),
        "catalogue": catalogue_stats,
        "validation": validation(),
        "limitations": list(LIMITATIONS),
    }
