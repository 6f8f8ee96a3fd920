"""The one decision over both families: merging an alignment found twice, the stand-alone threshold
for landmark-only matches, and which place of a repeated passage is the finding."""

from __future__ import annotations

import dataclasses
import math

from earmark.match.combine import combine, mark_repeats, same_alignment
from earmark.match.landmarks import HoughConfig
from earmark.match.model import Match


def _m(rec: int, q0: float, q1: float, r0: float, *, fmp: float, family: str = "chromaprint",
       anchors: int = 0, ber: float | None = 0.1, alternative: bool = False) -> Match:
    return Match(track_id=f"T{rec:03d}", rec_id=rec, query_start=q0, query_end=q1, ref_start=r0,
                 ref_end=r0 + (q1 - q0), score=-math.log10(fmp), fmp=fmp, ber=ber,
                 chance_ber=None if ber is None else 0.45, n_items=80, n_distinct=70,
                 alternative=alternative, family=family, anchors=anchors)


def test_same_alignment_merges_into_one_match_with_union_of_spans():
    c = _m(1, 0.0, 8.0, 100.0, fmp=1e-20)
    lm = _m(1, 2.0, 10.0, 102.0, fmp=1e-40, family="landmark", anchors=30, ber=None)
    assert same_alignment(c, lm)
    (out,) = combine([c], [lm])
    assert out.family == "chromaprint+landmark"
    assert (out.query_start, out.query_end) == (0.0, 10.0)
    assert out.ref_start == 100.0 and math.isclose(out.ref_end, 110.0)
    assert math.isclose(out.fmp, 2e-40)  # the smaller, doubled for asking two families
    assert out.anchors == 30 and out.ber == 0.1


def test_landmark_only_match_stands_only_under_the_standalone_threshold():
    lm = _m(2, 0.0, 10.0, 50.0, fmp=1e-30, family="landmark", anchors=20, ber=None)
    assert combine([], [lm], stands_alone=lambda m: m.fmp <= 1e-80) == []
    assert combine([], [lm], stands_alone=lambda m: m.fmp <= 1e-20) == [lm]
    # a different place of the same recording is not the same alignment
    c = _m(2, 0.0, 10.0, 80.0, fmp=1e-20)
    assert not same_alignment(c, lm)
    assert len(combine([c], [lm], stands_alone=lambda m: m.fmp <= 1e-20)) == 2


def test_merged_alternative_of_one_family_does_not_make_a_second_primary_place():
    # Chromaprint: best place 10 s, repeat at 40 s (an alternative). Landmarks prefer 40 s (primary
    # there) and also see 10 s. After merging, only the strongest place may be primary.
    c_best = _m(3, 0.0, 10.0, 10.0, fmp=1e-60)
    c_rep = _m(3, 0.0, 10.0, 40.0, fmp=1e-30, alternative=True)
    lm_rep = _m(3, 0.5, 9.5, 40.5, fmp=1e-50, family="landmark", anchors=40, ber=None)
    lm_best = _m(3, 0.5, 9.5, 10.5, fmp=1e-45, family="landmark", anchors=35, ber=None, alternative=True)
    out = combine([c_best, c_rep], [lm_rep, lm_best])
    primary = [m for m in out if not m.alternative]
    assert [m.ref_start for m in primary] == [10.0]
    assert [m.ref_start for m in out if m.alternative] == [40.0]


def test_mark_repeats_keeps_disjoint_copies_and_other_recordings_primary():
    a = _m(4, 0.0, 10.0, 0.0, fmp=1e-50)
    b = _m(4, 20.0, 30.0, 0.0, fmp=1e-40)  # a second copy later in the item: not a repeat
    c = _m(5, 0.0, 10.0, 0.0, fmp=1e-30)  # another recording over the same stretch
    d = _m(4, 3.0, 12.0, 60.0, fmp=1e-45)  # 7 of its 9 s inside a: a repeat
    e = _m(4, 8.0, 20.0, 90.0, fmp=1e-45)  # 2 of its 12 s inside a: its own stretch
    out = mark_repeats([a, b, c, d, e])
    assert [m.alternative for m in out] == [False, False, False, True, False]
    # ties on probability fall to the lower bit error rate
    x = _m(6, 0.0, 10.0, 0.0, fmp=1e-300, ber=0.09)
    y = _m(6, 0.0, 10.0, 30.0, fmp=1e-300, ber=0.04)
    assert [m.alternative for m in mark_repeats([x, y])] == [True, False]
    # an already-correct list comes back unchanged, objects and all
    same = [a, dataclasses.replace(d, alternative=True)]
    assert mark_repeats(same)[1] is same[1]


def test_places_beyond_chance_are_ranked_by_aligned_evidence_not_by_the_float_floor():
    # A loop: the true place, found by both families (probability doubled at the floor) with more
    # anchors, against a landmark-only place one loop later with fewer anchors.
    true = _m(7, 0.0, 30.0, 170.0, fmp=2e-292, family="chromaprint+landmark", anchors=298)
    loop = _m(7, 0.9, 21.0, 195.0, fmp=1e-292, family="landmark", anchors=240, ber=None)
    out = mark_repeats([loop, true])
    assert [m.alternative for m in out] == [True, False]
    # away from the floor the probability still decides
    a = _m(8, 0.0, 10.0, 0.0, fmp=1e-60, anchors=20)
    b = _m(8, 0.0, 10.0, 40.0, fmp=1e-50, anchors=90)
    assert [m.alternative for m in mark_repeats([a, b])] == [False, True]


def test_a_place_both_families_found_outranks_a_landmark_only_bar_offset():
    # a recording built on a 2.8 s loop: landmarks line up one bar early with more anchors, but
    # only the true place has Chromaprint's bit agreement too
    true = _m(9, 0.0, 30.0, 193.3, fmp=2e-292, family="chromaprint+landmark", anchors=159, ber=0.026)
    bar = _m(9, 1.2, 17.0, 191.6, fmp=1e-292, family="landmark", anchors=217, ber=None)
    assert [m.alternative for m in mark_repeats([bar, true])] == [True, False]


def test_a_landmark_only_copy_that_keeps_timing_and_covers_the_item_stands_at_the_chance_level():
    hc = HoughConfig()  # copy_fmp 1e-6, max_fmp 1e-80, min_span_fraction 0.5
    lm = _m(10, 0.5, 9.5, 40.0, fmp=1e-10, family="landmark", anchors=20, ber=None)
    assert hc.stands_alone(lm, item_duration=10.0)  # a degraded 10 s copy
    pitched = dataclasses.replace(lm, pitch_st=2.0, transform="pitch")
    assert hc.stands_alone(pitched, item_duration=10.0)  # timing kept, pitch shifted
    assert not hc.stands_alone(dataclasses.replace(lm, fmp=1e-5), item_duration=10.0)  # chance level
    # a shared ending: 9 s of a 312 s piece, untransformed
    assert not hc.stands_alone(lm, item_duration=312.0)
    # a theme at another tempo covering the item
    tempo = dataclasses.replace(lm, time_factor=1.12, transform="tempo")
    assert not hc.stands_alone(tempo, item_duration=10.0)
    # anything beyond the preset stands
    assert hc.stands_alone(dataclasses.replace(tempo, fmp=1e-90), item_duration=312.0)


def test_weak_landmark_only_repeat_places_are_dropped_but_strong_ones_kept():
    best = _m(11, 0.0, 12.0, 22.0, fmp=1e-190, family="chromaprint+landmark", anchors=120)
    bar = _m(11, 0.4, 9.5, 33.2, fmp=1e-40, family="landmark", anchors=39, ber=None)
    loop = _m(11, 0.2, 11.0, 70.0, fmp=1e-95, family="landmark", anchors=90, ber=None)
    out = combine([best], [bar, loop], stands_alone=lambda m: m.fmp <= 1e-6,
                  repeat_stands=lambda m: m.fmp <= 1e-80)
    assert [(m.ref_start, m.alternative) for m in out] == [(22.0, False), (70.0, True)]


def test_a_weak_repeat_place_as_strong_as_the_best_is_kept_so_the_place_is_not_asserted():
    # a loop: landmark evidence alone, 15 anchors at one bar and 14 at another (a hundredfold apart in
    # probability, one anchor apart in evidence); neither is strong enough to stand as a repeat
    best = _m(12, 0.5, 8.6, 157.0, fmp=1e-19, family="landmark", anchors=15, ber=None)
    twin = _m(12, 0.5, 8.6, 143.3, fmp=1e-17, family="landmark", anchors=14, ber=None)
    weak = _m(12, 0.8, 8.6, 88.4, fmp=1e-9, family="landmark", anchors=9, ber=None)
    out = combine([], [best, twin, weak], stands_alone=lambda m: m.fmp <= 1e-6,
                  repeat_stands=lambda m: m.fmp <= 1e-80)
    assert [(m.ref_start, m.alternative) for m in out] == [(143.3, True), (157.0, False)]
    # with Chromaprint bits on the best place, the scores are compared, and 17 is under 0.9 x 19
    bits = dataclasses.replace(best, ber=0.1, family="chromaprint+landmark")
    assert [m.ref_start for m in combine([bits], [twin], repeat_stands=lambda m: False)] == [157.0]
