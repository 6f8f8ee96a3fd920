"""One decision over both fingerprint families: a recording found at one alignment by Chromaprint and
by landmarks is reported once, with the union of its spans and the evidence of both."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

from earmark.match.model import FACTOR_TOLERANCE, Match

#: A match is a repeat (an alternative place) of a stronger match of the same recording when more
#: than this share of its item span lies inside the stronger one's.
REPEAT_OVERLAP = 0.5

#: False-match probabilities this small no longer rank two places against each other: they sit near
#: the float floor (1e-300), where the two-family doubling alone can reorder them, and both places
#: are beyond chance; the one with more aligned evidence is the finding.
RANK_CERTAIN_FMP = 1e-150

#: Another place of a repeated passage matches about as well as the best place, so that which place
#: was copied is not known, when its evidence is at least this share of the best place's: its score,
#: or its aligned anchors where both are beyond ranking by probability (``RANK_CERTAIN_FMP``) or both
#: rest on landmark evidence alone (one anchor more or less moves a weak landmark match's probability
#: a hundredfold; the anchors are the evidence itself).
AMBIGUOUS_EVIDENCE_RATIO = 0.9

#: Two matches of one recording describe the same alignment when, where their item spans meet, the
#: recording times they imply differ by at most this many seconds.
SAME_ALIGNMENT_S = 1.0


def ref_at(m: Match, t: float) -> float:
    """The recording time match ``m`` places at item time ``t``."""
    return m.ref_start + (t - m.query_start) * m.time_factor


def same_alignment(a: Match, b: Match) -> bool:
    if a.rec_id != b.rec_id:
        return False
    lo, hi = max(a.query_start, b.query_start), min(a.query_end, b.query_end)
    if hi < lo - SAME_ALIGNMENT_S:  # disjoint stretches of the item: separate copies
        return False
    mid = 0.5 * (lo + hi)
    return abs(ref_at(a, mid) - ref_at(b, mid)) <= SAME_ALIGNMENT_S


def merge(c: Match, lm: Match) -> Match:
    """Two matches of the same alignment as one: ``c`` (Chromaprint, or already merged) and a
    landmark match ``lm``.

    Spans are the union; the false-match probability is the smaller of the two, doubled when two
    families were asked; Chromaprint's bit statistics and the stronger landmark evidence (factors
    and anchors) are kept.
    """
    first = c if c.query_start <= lm.query_start else lm
    last = c if c.query_end >= lm.query_end else lm
    both = c.family != "landmark"
    fmp = min(1.0, (2 if both else 1) * min(c.fmp, lm.fmp))
    strong = lm if lm.anchors >= c.anchors else c
    return dataclasses.replace(
        c,
        query_start=first.query_start, ref_start=first.ref_start,
        query_end=last.query_end, ref_end=max(first.ref_start, last.ref_end),
        fmp=fmp, score=-math.log10(max(fmp, 1e-300)),
        family="chromaprint+landmark" if both else "landmark",
        time_factor=strong.time_factor, pitch_st=strong.pitch_st,
        transform=strong.transform, anchors=strong.anchors, hits=strong.hits,
        alternative=c.alternative and lm.alternative,
        empirical_fmp=min((x.empirical_fmp for x in (c, lm) if x.empirical_fmp is not None), default=None),
    )


#: ``(a, b, q0, q1)`` for matches of two recordings over the item stretch ``[q0, q1]`` they share:
#: whether the recordings share the audio there.
SameAudio = Callable[[Match, Match, float, float], bool]

#: Two recordings that share audio are told apart by the item's aligned landmark anchors when
#: their counts are this many standard deviations from an even split (two-sided, about 5 %).
PREFERENCE_Z = 2.0


def as_strong(best: Match | dict, other: Match | dict) -> bool:
    """Whether ``other``'s evidence is at least ``AMBIGUOUS_EVIDENCE_RATIO`` of ``best``'s (matches, or
    their report dicts)."""
    b = best if isinstance(best, dict) else dataclasses.asdict(best)
    o = other if isinstance(other, dict) else dataclasses.asdict(other)
    anchors_b, anchors_o = b.get("anchors") or 0, o.get("anchors") or 0
    landmark_only = b.get("ber") is None and o.get("ber") is None and anchors_b > 0 and anchors_o > 0
    if min(b["score"], o["score"]) >= -math.log10(RANK_CERTAIN_FMP) or landmark_only:
        return anchors_o >= AMBIGUOUS_EVIDENCE_RATIO * anchors_b
    return o["score"] >= AMBIGUOUS_EVIDENCE_RATIO * b["score"]


def combine(chromaprint: list[Match], landmark: list[Match], *,
            stands_alone: Callable[[Match], bool] = lambda m: True,
            repeat_stands: Callable[[Match], bool] = lambda m: True) -> list[Match]:
    """Matches of both families, each (recording, alignment) once, in item order.

    A landmark match that coincides with a Chromaprint match is merged into it; one that does not
    is reported only if ``stands_alone(match)`` (see ``HoughConfig.stands_alone``), and, when it
    turns out to be a weaker place of a passage the recording repeats (see :func:`mark_repeats`),
    only if ``repeat_stands(match)`` too, or if it is :func:`as_strong` as the place it repeats (then
    the evidence does not say which of the two was copied, and dropping it would assert one).
    """
    out = list(chromaprint)
    for m in sorted(landmark, key=lambda m: (m.fmp, -m.anchors)):
        for i, c in enumerate(out):
            if same_alignment(c, m):
                out[i] = merge(c, m)
                break
        else:
            if stands_alone(m):
                out.append(m)
    out = mark_repeats(out)
    primaries = [m for m in out if not m.alternative]

    def stands_as_repeat(m: Match) -> bool:
        shared = [(p, min(m.query_end, p.query_end) - max(m.query_start, p.query_start))
                  for p in primaries if p.rec_id == m.rec_id]
        return repeat_stands(m) or any(x > REPEAT_OVERLAP * m.duration and as_strong(p, m) for p, x in shared)

    out = [m for m in out if not (m.alternative and m.family == "landmark" and not stands_as_repeat(m))]
    out.sort(key=lambda m: (m.query_start, m.track_id, m.ref_start))
    return out


def strength(m: Match) -> tuple:
    """A match's rank among rival matches, strongest first (see :func:`mark_repeats`)."""
    certain = max(m.fmp, 1e-300) <= RANK_CERTAIN_FMP
    families = len(m.family.split("+"))
    return (RANK_CERTAIN_FMP if certain else m.fmp, -families, -m.anchors, -m.duration,
            1.0 if m.ber is None else m.ber, m.query_start, m.ref_start)


def mark_repeats(matches: list[Match]) -> list[Match]:
    """Decide once, over both families, which place of a repeated passage is the finding.

    A recording that repeats a passage (a loop, a chorus) matches one stretch of the item at several
    places. Each family marks its weaker places as alternatives, but a merge can join one family's
    alternative to the other's best; so the flags are set again here. Taken strongest first, a match
    is an alternative when more than ``REPEAT_OVERLAP`` of its item span lies inside a stronger
    primary match of the same recording. Strength is the smallest false-match probability; below
    ``RANK_CERTAIN_FMP``, a place both families found, then the most aligned anchors, then the
    longest span, then the lowest bit error rate. (In a recording built on a short loop, landmarks
    line up at every bar nearly as well as at the true place; Chromaprint's bit agreement is what
    singles the true place out.) Alternatives stay in the report, as evidence that the place is
    ambiguous; only primary matches count towards a recording's coverage.
    """
    primaries: list[Match] = []
    flags: dict[int, bool] = {}
    for i in sorted(range(len(matches)), key=lambda i: strength(matches[i])):
        m = matches[i]
        inside = [min(m.query_end, p.query_end) - max(m.query_start, p.query_start)
                  for p in primaries if p.rec_id == m.rec_id]
        flags[i] = any(x > REPEAT_OVERLAP * m.duration for x in inside)
        if not flags[i]:
            primaries.append(m)
    return [m if m.alternative == flags[i] else dataclasses.replace(m, alternative=flags[i])
            for i, m in enumerate(matches)]


def _prefers(a: Match, b: Match) -> bool:
    """Whether the item holds ``a`` rather than ``b`` where the two recordings share the audio."""
    n = a.anchors + b.anchors
    z = (a.anchors - b.anchors) / math.sqrt(n) if n else 0.0
    if abs(z) >= PREFERENCE_Z:
        return z > 0
    return strength(a) <= strength(b)


def mark_same_audio(matches: list[Match], same_audio: SameAudio) -> list[Match]:
    """Decide which of two registered recordings that share audio (a remaster and its original, one
    master registered twice, a version built on the other's material) an item holds, where both
    match one stretch of it.

    Two primary matches of different recordings whose item spans overlap by more than
    ``REPEAT_OVERLAP`` of the shorter, at one speed (time factors within ``FACTOR_TOLERANCE``), are
    compared reference to reference over the shared stretch (``same_audio``). Where the recordings
    share the audio, the item cannot be told to hold both there, and both are far beyond chance,
    so chance does not separate them. What does is where the two differ, a remaster's mastering moving
    spectral peaks, and which of them the item follows there: the one with more aligned landmark
    anchors (item peaks that agree with the alignment) when the two counts differ by
    ``PREFERENCE_Z`` standard deviations of an even split; else the stronger match by
    :func:`strength` (the difference is within noise: the finding is then a best reading, and the
    report says the audio is shared). Chromaprint's bits are not asked: they follow the harmony,
    which mastering leaves alone; on the benchmark's remaster a sign test over the bits where the
    two recordings differ was significant in 4 of 11 items and wrong in one (docs/matching.md).

    The other match, and its weaker places over the same stretch, become alternatives with
    ``shares_audio_with`` naming the finding's track id. Recordings that merely overlap in the item (two
    registered songs mixed together) are both kept.
    """
    order = sorted((i for i, m in enumerate(matches) if not m.alternative),
                   key=lambda i: strength(matches[i]))
    losers: dict[int, Match] = {}  # index of a demoted primary -> the finding it yields to
    for x, i in enumerate(order):
        for j in order[x + 1:]:
            a, b = matches[i], matches[j]
            if i in losers or j in losers:
                continue
            if a.rec_id == b.rec_id or abs(a.time_factor / b.time_factor - 1.0) > FACTOR_TOLERANCE:
                continue
            lo, hi = max(a.query_start, b.query_start), min(a.query_end, b.query_end)
            if hi - lo <= REPEAT_OVERLAP * min(a.duration, b.duration):
                continue
            if same_audio(a, b, lo, hi):
                if _prefers(a, b):
                    losers[j] = a
                else:
                    losers[i] = b
    if not losers:
        return matches
    out = list(matches)
    for i, winner in losers.items():
        loser = matches[i]
        for j, x in enumerate(matches):
            overlap = min(x.query_end, loser.query_end) - max(x.query_start, loser.query_start)
            repeat = x.alternative and overlap > REPEAT_OVERLAP * x.duration
            if x.rec_id == loser.rec_id and (j == i or repeat):
                out[j] = dataclasses.replace(x, alternative=True, shares_audio_with=winner.track_id)
    return out
