"""Deterministic synthetic "songs" and test signals.

Everything earmark's tests and its built-in demo listen to is generated here, from integer seeds; no
audio is ever downloaded. All generators are pure functions of their arguments: they use no global
random state and do no I/O (only :func:`write_wav` touches the file system), and the same arguments
give bit-identical ``float32`` output.

Two levels of randomness are kept apart:

* an **artist** (:class:`Artist`, made by :func:`make_artist` from an ``artist_seed``) fixes the key
  and scale, a tempo range (20 BPM wide, inside 80-160 BPM), the instrument timbres (harmonic
  spectra, ADSR envelopes, vibrato, chorus detune), the drum kit, groove and arrangement habits;
* a **composition** (drawn from a song ``seed``) fixes the tempo inside that range, the chord
  progressions, the song form, the melody (new phrase every two bars), bass line and drum patterns.

``song(seed)`` is exactly ``same_artist_song(seed, seed)``: every seed is its own artist. Two calls
of :func:`same_artist_song` with the same ``artist_seed`` and different ``seed`` give different
compositions that sound like the same band -- hard negatives for fingerprint matching.

Notes
-----
Internally everything is computed in ``float64`` and rounded to ``float32`` once at the end, using
only elementwise numpy arithmetic, sequential IIR filters and table look-ups, so results do not
depend on how many threads are used. Bit-identity is guaranteed for a given numpy/scipy build;
different CPUs' vectorised ``sin``/``exp`` could in principle differ in the last ``float64`` bit,
which the final rounding to ``float32`` (and to 16 bit in :func:`write_wav`) all but always hides.
"""

from __future__ import annotations

import math
import os
import wave
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import signal as _signal

from earmark.errors import ParameterError

__all__ = [
    "PEAK",
    "Artist",
    "Voice",
    "chirp",
    "make_artist",
    "mix_at_snr",
    "noise",
    "same_artist_song",
    "silence",
    "song",
    "tone",
    "write_wav",
]

SeedLike = int | np.random.Generator
"""An integer seed (``>= 0``) or a :class:`numpy.random.Generator` that is used (and advanced)."""

PEAK = 0.89
"""Peak amplitude of :func:`song` output (about -1 dBFS)."""

# Seeds are mixed with a per-purpose tag so that e.g. artist 7 and composition 7 are unrelated.
_TAG_ARTIST = 0x41525453
_TAG_SONG = 0x534F4E47
_TAG_NOISE = 0x4E4F4953

_TABLE_SIZE = 4096
_NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_SCALES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "harmonic minor": (0, 2, 3, 5, 7, 8, 11),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
}
# Chord progressions as 0-based scale degrees, one chord per bar.
_PROGRESSIONS: tuple[tuple[int, ...], ...] = (
    (0, 4, 5, 3),
    (0, 5, 3, 4),
    (5, 3, 0, 4),
    (0, 3, 4, 0),
    (0, 3, 5, 4),
    (0, 5, 1, 4),
    (0, 2, 3, 4),
    (3, 4, 0, 0),
    (5, 4, 3, 4),
    (0, 3, 0, 4),
    (1, 4, 0, 5),
    (3, 0, 4, 5),
)
_FORMS: tuple[str, ...] = ("AABABCBB", "ABABCCBA", "AABBACBB", "ABACABCB", "AABACBAB")
# Kick patterns on a 16-step (sixteenth-note) grid.
_KICK_PATTERNS: tuple[tuple[int, ...], ...] = (
    (0, 4, 8, 12),
    (0, 8),
    (0, 7, 8),
    (0, 10),
    (0, 3, 10),
    (0, 6, 8),
    (0, 8, 11),
    (0, 3, 8, 10),
)
_STAB_PATTERNS: tuple[tuple[int, ...], ...] = (
    (2, 6, 10, 14),
    (0, 3, 6, 10, 12),
    (0, 6, 12),
    (2, 5, 8, 14),
    (0, 4, 7, 10),
)
_BASS_STYLES = ("whole", "halves", "quarters", "eighths", "syncopated", "octaves")
_CHORD_STYLES = ("pad", "stabs", "arp")


# --------------------------------------------------------------------------------------------------
# Public data model
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Voice:
    """Timbre of a pitched instrument.

    Attributes
    ----------
    harmonics : tuple of float
        Relative amplitudes of partials 1..H (partial 1 is 1.0).
    phases : tuple of float
        Start phases of the partials, radians.
    attack, decay, release : float
        ADSR times in seconds (``decay`` is the time constant towards ``sustain``).
    sustain : float
        Sustain level, 0..1 of the peak.
    vibrato_depth : float
        Peak frequency deviation as a fraction of the note frequency (0 = none).
    vibrato_rate : float
        Vibrato rate in Hz.
    detune_cents : float
        If non-zero the voice is two oscillators detuned by +/- this many cents (chorus).
    """

    harmonics: tuple[float, ...]
    phases: tuple[float, ...]
    attack: float
    decay: float
    sustain: float
    release: float
    vibrato_depth: float = 0.0
    vibrato_rate: float = 5.0
    detune_cents: float = 0.0


@dataclass(frozen=True)
class Artist:
    """Everything the songs of one synthetic artist share.

    Made by :func:`make_artist`; see the module docstring. Times are in seconds, frequencies in Hz.

    Attributes
    ----------
    seed : int or None
        The ``artist_seed`` it was made from (``None`` if made from a Generator).
    tonic : int
        Pitch class of the key, 0 = C .. 11 = B.
    scale : str
        Scale name, a key of the internal scale table (``"major"``, ``"minor"``, ``"dorian"`` ...).
    tempo_range : tuple of float
        ``(low, high)`` BPM; each composition picks its tempo uniformly inside.
    lead, pad, bass : Voice
        Timbres of the melody, the chord instrument and the bass.
    chord_style : str
        How chords are played: ``"pad"`` (sustained), ``"stabs"`` (short hits) or ``"arp"``.
    stab_pattern : tuple of int
        16th-note grid positions of chord stabs in a bar.
    arp_division : int
        Arpeggio step in 16th notes (1 or 2).
    bass_styles : tuple of str
        Bass-line patterns this artist uses.
    kick_patterns : tuple of tuple of int
        Kick patterns (16th-note grid positions) this artist uses.
    hat_division : int
        Hi-hat step in 16th notes (1 or 2).
    halftime : bool
        Snare on beat 3 only instead of 2 and 4.
    swing : float
        Delay of off-beat 16th notes as a fraction of a 16th note.
    sevenths : bool
        Whether chords include the seventh.
    note_density : float
        0..1, preference of the melody for short notes.
    legato : float
        Fraction of the written note length the melody holds.
    kick_hz : tuple of float
        ``(start_hz, end_hz, sweep_tau, decay_tau)`` of the kick's sine sweep.
    snare : tuple of float
        ``(band_centre_hz, noise_decay_tau, body_hz, body_level)``.
    hat : tuple of float
        ``(highpass_cutoff_hz, closed_decay_tau)``.
    levels : tuple of float
        Mix gains ``(lead, chords, bass, kick, snare, hat)``.
    """

    seed: int | None
    tonic: int
    scale: str
    tempo_range: tuple[float, float]
    lead: Voice
    pad: Voice
    bass: Voice
    chord_style: str
    stab_pattern: tuple[int, ...]
    arp_division: int
    bass_styles: tuple[str, ...]
    kick_patterns: tuple[tuple[int, ...], ...]
    hat_division: int
    halftime: bool
    swing: float
    sevenths: bool
    note_density: float
    legato: float
    kick_hz: tuple[float, float, float, float]
    snare: tuple[float, float, float, float]
    hat: tuple[float, float]
    levels: tuple[float, float, float, float, float, float]

    @property
    def key_name(self) -> str:
        """Human-readable key, e.g. ``"F# dorian"``."""
        return f"{_NOTE_NAMES[self.tonic]} {self.scale}"


# --------------------------------------------------------------------------------------------------
# Seeds and small helpers
# --------------------------------------------------------------------------------------------------


def _rng(seed: SeedLike, tag: int) -> np.random.Generator:
    """Return a Generator for ``seed``; an int is mixed with ``tag``, a Generator is used as is."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ParameterError(f"seed must be an int or numpy.random.Generator, not {type(seed).__name__}")
    if seed < 0:
        raise ParameterError(f"seed must be >= 0, got {seed}")
    return np.random.default_rng([int(seed), tag])


def _seed_int(seed: SeedLike) -> int:
    """Return ``seed`` itself if it is an int, else draw a 63-bit int from the Generator."""
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 2**63 - 1))
    _rng(seed, 0)  # validates
    return int(seed)


def _n_samples(duration: float, sr: int) -> int:
    """Validate ``duration`` (s) and ``sr`` (Hz) and return the sample count."""
    if isinstance(sr, bool) or not isinstance(sr, int | np.integer) or sr <= 0:
        raise ParameterError(f"sr must be a positive int, got {sr!r}")
    if not math.isfinite(duration) or duration < 0:
        raise ParameterError(f"duration must be a finite number of seconds >= 0, got {duration!r}")
    return int(round(duration * sr))


def _midi_hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


def _degree_midi(degree: int, base: int, scale: tuple[int, ...]) -> int:
    """MIDI note of a (possibly negative or > 6) scale degree above the MIDI note ``base``."""
    octave, step = divmod(degree, len(scale))
    return base + 12 * octave + scale[step]


# --------------------------------------------------------------------------------------------------
# Artists
# --------------------------------------------------------------------------------------------------


def _random_spectrum(
    rng: np.random.Generator, n: int, tilt: tuple[float, float]
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Draw a harmonic amplitude profile (saw/square/triangle/organ/mellow family) and phases."""
    h = np.arange(1, n + 1, dtype=np.float64)
    family = int(rng.integers(5))
    if family == 0:  # saw-like
        amps = 1.0 / h
    elif family == 1:  # square-like
        amps = np.where(h % 2 == 1, 1.0 / h, 0.04 / h)
    elif family == 2:  # triangle-like
        amps = np.where(h % 2 == 1, 1.0 / h**2, 0.02 / h)
    elif family == 3:  # organ drawbars
        amps = rng.uniform(0.1, 1.0, n) * (rng.random(n) < 0.6)
    else:  # mellow, exponentially falling
        amps = np.exp(-(h - 1.0) * rng.uniform(0.4, 1.2))
    amps = amps * np.exp(rng.normal(0.0, 0.3, n)) * h ** -rng.uniform(*tilt)
    amps[0] = 1.0
    amps = amps / amps[0]
    phases = rng.uniform(0.0, 2.0 * math.pi, n)
    return tuple(float(a) for a in np.round(amps, 6)), tuple(float(p) for p in np.round(phases, 6))


def _random_voice(
    rng: np.random.Generator,
    *,
    n_harmonics: int,
    tilt: tuple[float, float],
    attack: tuple[float, float],
    decay: tuple[float, float],
    sustain: tuple[float, float],
    release: tuple[float, float],
    vibrato: float,
    detune: tuple[float, float],
) -> Voice:
    harmonics, phases = _random_spectrum(rng, n_harmonics, tilt)
    has_vibrato = vibrato > 0 and rng.random() < 0.6
    return Voice(
        harmonics=harmonics,
        phases=phases,
        attack=round(float(rng.uniform(*attack)), 4),
        decay=round(float(rng.uniform(*decay)), 4),
        sustain=round(float(rng.uniform(*sustain)), 4),
        release=round(float(rng.uniform(*release)), 4),
        vibrato_depth=round(float(rng.uniform(0.002, vibrato)), 5) if has_vibrato else 0.0,
        vibrato_rate=round(float(rng.uniform(4.5, 6.5)), 3),
        detune_cents=round(float(rng.uniform(*detune)), 3),
    )


def make_artist(artist_seed: SeedLike) -> Artist:
    """Derive the shared style of a synthetic artist from a seed.

    Parameters
    ----------
    artist_seed : int or numpy.random.Generator
        Non-negative integer, or a Generator that is consumed.

    Returns
    -------
    Artist
        Key, tempo range, timbres, drum kit and groove; identical for identical integer seeds.
    """
    rng = _rng(artist_seed, _TAG_ARTIST)
    tonic = int(rng.integers(12))
    scale = str(rng.choice(list(_SCALES)))
    centre = float(rng.uniform(90.0, 150.0))
    tempo_range = (round(centre - 10.0, 2), round(centre + 10.0, 2))

    plucky = rng.random() < 0.4
    lead = _random_voice(
        rng,
        n_harmonics=10,
        tilt=(0.0, 0.8),
        attack=(0.003, 0.015) if plucky else (0.01, 0.06),
        decay=(0.08, 0.3),
        sustain=(0.0, 0.25) if plucky else (0.45, 0.9),
        release=(0.04, 0.2),
        vibrato=0.0 if plucky else 0.007,
        detune=(0.0, 0.0),
    )
    chord_style = str(rng.choice(_CHORD_STYLES))
    sustained = chord_style == "pad"
    pad = _random_voice(
        rng,
        n_harmonics=8,
        tilt=(0.3, 1.2),
        attack=(0.08, 0.4) if sustained else (0.003, 0.02),
        decay=(0.3, 1.0) if sustained else (0.06, 0.25),
        sustain=(0.6, 0.95) if sustained else (0.0, 0.3),
        release=(0.2, 0.6) if sustained else (0.05, 0.15),
        vibrato=0.0,
        detune=(3.0, 12.0),
    )
    bass = _random_voice(
        rng,
        n_harmonics=6,
        tilt=(0.2, 1.0),
        attack=(0.003, 0.015),
        decay=(0.1, 0.5),
        sustain=(0.2, 0.8),
        release=(0.03, 0.1),
        vibrato=0.0,
        detune=(0.0, 0.0),
    )
    n_kicks = int(rng.integers(2, 4))
    kick_idx = rng.choice(len(_KICK_PATTERNS), size=n_kicks, replace=False)
    bass_idx = rng.choice(len(_BASS_STYLES), size=int(rng.integers(2, 4)), replace=False)
    return Artist(
        seed=None if isinstance(artist_seed, np.random.Generator) else int(artist_seed),
        tonic=tonic,
        scale=scale,
        tempo_range=tempo_range,
        lead=lead,
        pad=pad,
        bass=bass,
        chord_style=chord_style,
        stab_pattern=_STAB_PATTERNS[int(rng.integers(len(_STAB_PATTERNS)))],
        arp_division=int(rng.choice([1, 2])),
        bass_styles=tuple(_BASS_STYLES[int(i)] for i in sorted(bass_idx)),
        kick_patterns=tuple(_KICK_PATTERNS[int(i)] for i in sorted(kick_idx)),
        hat_division=int(rng.choice([1, 2])),
        halftime=bool(rng.random() < 0.2),
        swing=round(float(rng.choice([0.0, 0.0, rng.uniform(0.1, 0.3)])), 4),
        sevenths=bool(rng.random() < 0.4),
        note_density=round(float(rng.uniform(0.0, 1.0)), 4),
        legato=round(float(rng.uniform(0.55, 0.95)), 4),
        kick_hz=(
            round(float(rng.uniform(100.0, 180.0)), 2),
            round(float(rng.uniform(40.0, 60.0)), 2),
            round(float(rng.uniform(0.015, 0.05)), 4),
            round(float(rng.uniform(0.12, 0.35)), 4),
        ),
        snare=(
            round(float(rng.uniform(1200.0, 3200.0)), 1),
            round(float(rng.uniform(0.035, 0.09)), 4),
            round(float(rng.uniform(150.0, 250.0)), 2),
            round(float(rng.uniform(0.2, 0.6)), 3),
        ),
        hat=(round(float(rng.uniform(6000.0, 9500.0)), 1), round(float(rng.uniform(0.015, 0.05)), 4)),
        levels=(
            round(float(rng.uniform(0.6, 0.9)), 3),
            round(float(rng.uniform(0.25, 0.45)), 3),
            round(float(rng.uniform(0.5, 0.8)), 3),
            round(float(rng.uniform(0.7, 1.0)), 3),
            round(float(rng.uniform(0.3, 0.5)), 3),
            round(float(rng.uniform(0.12, 0.3)), 3),
        ),
    )


# --------------------------------------------------------------------------------------------------
# Synthesis
# --------------------------------------------------------------------------------------------------


class _Osc:
    """Band-limited wavetable oscillator + ADSR for one Voice at one sample rate."""

    def __init__(self, voice: Voice, sr: int):
        self.voice = voice
        self.sr = sr
        self._tables: dict[int, np.ndarray] = {}
        self._grid = np.arange(_TABLE_SIZE + 1, dtype=np.float64) * (2.0 * math.pi / _TABLE_SIZE)

    def _table(self, freq: float) -> np.ndarray:
        # Keep every partial below 0.45 * sr (no aliasing), at least the fundamental.
        n = max(1, min(len(self.voice.harmonics), int(0.45 * self.sr / freq)))
        table = self._tables.get(n)
        if table is None:
            table = np.zeros(_TABLE_SIZE + 1, dtype=np.float64)
            for h in range(n):
                table += self.voice.harmonics[h] * np.sin((h + 1) * self._grid + self.voice.phases[h])
            table /= max(1.0, float(np.max(np.abs(table))))
            self._tables[n] = table
        return table

    def _wave(self, freq: float, n: int) -> np.ndarray:
        v = self.voice
        t = np.arange(n, dtype=np.float64)
        cycles = t * (freq / self.sr)
        if v.vibrato_depth > 0.0:
            w = 2.0 * math.pi * v.vibrato_rate / self.sr
            cycles += (freq * v.vibrato_depth / (2.0 * math.pi * v.vibrato_rate)) * (1.0 - np.cos(w * t))
        pos = (cycles - np.floor(cycles)) * _TABLE_SIZE
        idx = pos.astype(np.int64)
        frac = pos - idx
        table = self._table(freq)
        return table[idx] + frac * (table[idx + 1] - table[idx])

    def envelope(self, n_gate: int, n_release: int) -> np.ndarray:
        v = self.voice
        t = np.arange(n_gate, dtype=np.float64) / self.sr
        a = max(v.attack, 1.0 / self.sr)
        after = np.maximum(t - a, 0.0)
        gate = np.where(t < a, t / a, v.sustain + (1.0 - v.sustain) * np.exp(-after / v.decay))
        last = float(gate[-1]) if n_gate else 0.0
        tr = np.arange(n_release, dtype=np.float64) / self.sr
        rel = last * np.exp(-4.0 * tr / v.release) * np.maximum(1.0 - tr / v.release, 0.0)
        return np.concatenate([gate, rel])

    def add_note(self, out: np.ndarray, start: float, midi: float, gate: float, velocity: float) -> None:
        """Add a note starting at ``start`` s lasting ``gate`` s (+ release) into ``out`` in place."""
        i0 = int(round(start * self.sr))
        if i0 >= len(out):
            return
        n_gate = max(1, int(round(gate * self.sr)))
        n_rel = max(1, int(round(self.voice.release * self.sr)))
        env = self.envelope(n_gate, n_rel)
        skip = max(0, -i0)
        n = min(len(env), len(out) - i0)
        if n <= skip:
            return
        freq = _midi_hz(midi)
        if self.voice.detune_cents:
            ratio = 2.0 ** (self.voice.detune_cents / 1200.0)
            wave_ = 0.5 * (self._wave(freq * ratio, n) + self._wave(freq / ratio, n))
        else:
            wave_ = self._wave(freq, n)
        out[i0 + skip : i0 + n] += velocity * (env[skip:n] * wave_[skip:n])


def _add_template(out: np.ndarray, template: np.ndarray, start: float, gain: float, sr: int) -> None:
    i0 = int(round(start * sr))
    if i0 >= len(out) or i0 + len(template) <= 0:
        return
    skip = max(0, -i0)
    n = min(len(template), len(out) - i0)
    out[i0 + skip : i0 + n] += gain * template[skip:n]


def _decay(tau: float, sr: int, length: float | None = None) -> np.ndarray:
    """Exponential decay ``exp(-t / tau)`` lasting ``length`` s (default 6 tau), ending in a short ramp."""
    n = max(2, int(round((6.0 * tau if length is None else length) * sr)))
    t = np.arange(n, dtype=np.float64) / sr
    env = np.exp(-t / tau)
    ramp = min(n, max(2, sr // 200))
    env[-ramp:] *= np.linspace(1.0, 0.0, ramp)
    return env


def _kick_template(art: Artist, sr: int, pitch: float) -> np.ndarray:
    """Kick (or tom, for ``pitch`` > 1): decaying sine whose frequency sweeps down exponentially."""
    f0, f1, sweep, tau = art.kick_hz
    f0, f1 = f0 * pitch, f1 * pitch
    env = _decay(tau / pitch**0.5, sr)
    t = np.arange(len(env), dtype=np.float64) / sr
    phase = 2.0 * math.pi * (f1 * t + (f0 - f1) * sweep * (1.0 - np.exp(-t / sweep)))
    click = np.exp(-t / 0.002) * 0.3
    return env * np.sin(phase) + click * np.sin(2.0 * math.pi * 2.5 * f0 * t)


@dataclass
class _Drums:
    kicks: list[tuple[float, float, float]]  # time s, velocity, pitch multiplier (toms > 1)
    snares: list[tuple[float, float]]  # time s, velocity
    hats: list[tuple[float, float, float]]  # time s, velocity, decay tau s


def _render_drums(art: Artist, drums: _Drums, rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    nyq = sr / 2.0
    out = np.zeros(n, dtype=np.float64)
    lv = art.levels
    kick_cache: dict[float, np.ndarray] = {}
    for t, vel, pitch in drums.kicks:
        tpl = kick_cache.get(pitch)
        if tpl is None:
            tpl = kick_cache[pitch] = _kick_template(art, sr, pitch)
        _add_template(out, tpl, t, lv[3] * vel, sr)

    centre, noise_tau, body_hz, body_level = art.snare
    if drums.snares:
        env = np.zeros(n, dtype=np.float64)
        body = np.zeros(n, dtype=np.float64)
        tpl = _decay(noise_tau, sr)
        body_env = _decay(0.04, sr)
        tb = np.arange(len(body_env), dtype=np.float64) / sr
        body_tpl = body_level * body_env * np.sin(2.0 * math.pi * body_hz * tb)
        for t, vel in drums.snares:
            _add_template(env, tpl, t, vel, sr)
            _add_template(body, body_tpl, t, vel, sr)
        lo, hi = centre / 1.8, min(centre * 1.8, 0.95 * nyq)
        if lo < hi:
            sos = _signal.butter(2, [lo, hi], btype="bandpass", fs=sr, output="sos")
            noise_ = _signal.sosfilt(sos, rng.standard_normal(n)) * 2.0
        else:
            noise_ = rng.standard_normal(n) * 0.5
        out += lv[4] * (env * noise_ + body)

    if drums.hats:
        env = np.zeros(n, dtype=np.float64)
        cache: dict[float, np.ndarray] = {}
        for t, vel, tau in drums.hats:
            tpl = cache.get(tau)
            if tpl is None:
                tpl = cache[tau] = _decay(tau, sr)
            _add_template(env, tpl, t, vel, sr)
        cutoff = min(art.hat[0], 0.8 * nyq)
        sos = _signal.butter(2, cutoff, btype="highpass", fs=sr, output="sos")
        out += lv[5] * env * _signal.sosfilt(sos, rng.standard_normal(n)) * 2.0
    return out


# --------------------------------------------------------------------------------------------------
# Composition
# --------------------------------------------------------------------------------------------------


def _rhythm(rng: np.random.Generator, steps: int, density: float) -> list[tuple[int, int, bool]]:
    """Random note/rest rhythm filling ``steps`` 16th notes: list of (start, length, is_rest)."""
    lengths = np.array([1, 2, 3, 4, 6, 8])
    weights = np.array([0.4 * density, 1.0 + density, 0.4, 1.2 - 0.6 * density, 0.4, 0.4 - 0.3 * density])
    weights = weights / weights.sum()
    out: list[tuple[int, int, bool]] = []
    pos = 0
    if rng.random() < 0.3:
        lead_in = int(rng.choice([1, 2]))
        out.append((0, lead_in, True))
        pos = lead_in
    while pos < steps:
        length = min(int(rng.choice(lengths, p=weights)), steps - pos)
        rest = bool(rng.random() < 0.12) and pos > 0
        out.append((pos, length, rest))
        pos += length
    return out


def _chord_degrees(root: int, sevenths: bool) -> tuple[int, ...]:
    return (root, root + 2, root + 4, root + 6) if sevenths else (root, root + 2, root + 4)


def _melody_phrase(
    rng: np.random.Generator,
    rhythm: list[tuple[int, int, bool]],
    chords: list[int],
    degree: int,
    lo: int,
    span: int,
) -> tuple[list[tuple[int, int, int]], int]:
    """Pitches for a rhythm: a scale-degree random walk pulled to chord tones on strong beats."""
    steps = np.array([-4, -3, -2, -1, 0, 1, 2, 3, 4])
    weights = np.array([0.04, 0.08, 0.16, 0.22, 0.06, 0.22, 0.14, 0.05, 0.03])
    notes: list[tuple[int, int, int]] = []
    for start, length, rest in rhythm:
        if rest:
            continue
        degree += int(rng.choice(steps, p=weights))
        if degree < lo:
            degree = 2 * lo - degree
        if degree > lo + span:
            degree = 2 * (lo + span) - degree
        chord = chords[min(start // 16, len(chords) - 1)]
        if start % 4 == 0 and rng.random() < 0.75:
            tones = {(chord + k) % 7 for k in (0, 2, 4)}
            for delta in (0, -1, 1, -2, 2):
                if (degree + delta) % 7 in tones:
                    degree += delta
                    break
        notes.append((start, length, degree))
    return notes, degree


def _compose(art: Artist, rng: np.random.Generator, duration: float, sr: int) -> np.ndarray:
    scale = _SCALES[art.scale]
    tempo = float(rng.uniform(*art.tempo_range))
    step = 60.0 / tempo / 4.0  # one 16th note, s
    bar = 16 * step
    n_bars = max(1, math.ceil(duration / bar))
    n = _n_samples(duration, sr)
    tail = int(2.0 * sr)  # room for releases; cut off at the end
    lead_buf = np.zeros(n + tail)
    pad_buf = np.zeros(n + tail)
    bass_buf = np.zeros(n + tail)

    # Sections: three kinds with their own progression, melody register/density and groove.
    picks = rng.choice(len(_PROGRESSIONS), size=3, replace=False)
    sections = {}
    for name, p in zip("ABC", picks, strict=True):
        prog = list(_PROGRESSIONS[int(p)])
        if rng.random() < 0.3:  # a different turnaround now and then
            prog[-1] = int(rng.choice([3, 4, 5]))
        sections[name] = {
            "prog": prog,
            "lo": int(rng.integers(-1, 3)) + (2 if name == "B" else 0),
            "density": float(np.clip(art.note_density + rng.uniform(-0.3, 0.3) + 0.2 * (name == "B"), 0, 1)),
            "kick": art.kick_patterns[int(rng.integers(len(art.kick_patterns)))],
            "bass": art.bass_styles[int(rng.integers(len(art.bass_styles)))],
            "hats": art.hat_division if name != "C" else int(rng.choice([1, 2, 4])),
            "no_kick": name == "C" and rng.random() < 0.4,
            "no_chords": name == "A" and rng.random() < 0.25,
        }
    form = _FORMS[int(rng.integers(len(_FORMS)))]
    n_sections = math.ceil(n_bars / 4)
    order = [form[i % len(form)] for i in range(n_sections)]

    lead = _Osc(art.lead, sr)
    pad = _Osc(art.pad, sr)
    bass = _Osc(art.bass, sr)
    lead_base = 60 + art.tonic if art.tonic < 7 else 48 + art.tonic
    pad_lo = 52
    bass_base = 36 + art.tonic if art.tonic < 8 else 24 + art.tonic
    drums = _Drums(kicks=[], snares=[], hats=[])

    def at(bar_i: int, pos: float) -> float:
        swing = art.swing * step if int(pos) % 2 == 1 else 0.0
        return bar_i * bar + pos * step + swing

    degree = sections[order[0]]["lo"] + 4
    prev_rhythm: list[tuple[int, int, bool]] | None = None
    for s_i, name in enumerate(order):
        sec = sections[name]
        prog = sec["prog"]
        first_bar = 4 * s_i
        # ---- melody: a fresh phrase every two bars (rhythm occasionally reused, pitches never)
        for ph in range(2):
            b0 = first_bar + 2 * ph
            if b0 >= n_bars:
                break
            if prev_rhythm is None or rng.random() > 0.3:
                prev_rhythm = _rhythm(rng, 32, sec["density"])
            chords = prog[2 * ph : 2 * ph + 2]
            notes, degree = _melody_phrase(rng, prev_rhythm, chords, degree, sec["lo"], 9)
            for start, length, d in notes:
                t = at(b0, start) + rng.normal(0.0, 0.003)
                vel = float(rng.uniform(0.65, 1.0)) * (1.1 if start % 4 == 0 else 1.0)
                gate = length * step * art.legato
                lead.add_note(lead_buf, t, _degree_midi(d, lead_base, scale), gate, vel)
        # ---- chords, bass and drums bar by bar
        for k in range(4):
            b = first_bar + k
            if b >= n_bars:
                break
            root = prog[k]
            next_root = prog[(k + 1) % 4]
            voicing = []
            for d in _chord_degrees(root, art.sevenths):
                m = _degree_midi(d, art.tonic, scale)
                m += 12 * math.ceil((pad_lo - m) / 12)
                voicing.append(m)
            voicing.sort()
            if not sec["no_chords"]:
                if art.chord_style == "pad":
                    for m in voicing:
                        pad.add_note(pad_buf, at(b, 0), m, bar * 0.98, 1.0 / len(voicing))
                elif art.chord_style == "stabs":
                    for pos in art.stab_pattern:
                        vel = float(rng.uniform(0.7, 1.0)) / len(voicing)
                        for m in voicing:
                            pad.add_note(pad_buf, at(b, pos), m, step * 1.5, vel)
                else:
                    arp = voicing + [voicing[0] + 12]
                    if rng.random() < 0.5:
                        arp = arp + arp[-2:0:-1]
                    for j, pos in enumerate(range(0, 16, art.arp_division)):
                        m = arp[j % len(arp)]
                        vel = 0.5 * float(rng.uniform(0.7, 1.0))
                        pad.add_note(pad_buf, at(b, pos), m, step * art.arp_division, vel)
            # bass
            r = _degree_midi(root, bass_base, scale)
            fifth = _degree_midi(root + 4, bass_base, scale)
            style = sec["bass"]
            if style == "whole":
                line = [(0, 16, r)]
            elif style == "halves":
                line = [(0, 8, r), (8, 8, fifth if rng.random() < 0.5 else r)]
            elif style == "quarters":
                line = [(0, 4, r), (4, 4, r), (8, 4, fifth), (12, 4, r)]
            elif style == "eighths":
                line = [(p, 2, r) for p in range(0, 16, 2)]
            elif style == "octaves":
                line = [(p, 2, r + 12 * ((p // 2) % 2)) for p in range(0, 16, 2)]
            else:
                line = [(0, 3, r), (3, 3, r), (6, 2, fifth), (8, 3, r), (11, 3, r + 12), (14, 2, fifth)]
            if k == 3 or rng.random() < 0.25:  # walk towards the next chord
                approach = _degree_midi(next_root + int(rng.choice([-1, 1])), bass_base, scale)
                line = [x for x in line if x[0] < 12] + [(12, 2, fifth), (14, 2, approach)]
            for pos, length, m in line:
                vel = float(rng.uniform(0.8, 1.0))
                bass.add_note(bass_buf, at(b, pos), m, length * step * 0.9, vel)
            # drums
            bar_t = b * bar
            if s_i > 0 and k == 0:
                drums.hats.append((bar_t, 1.2, 0.6))  # crash at each section start
            fill = k == 3 and rng.random() < 0.6
            if not sec["no_kick"]:
                for pos in sec["kick"]:
                    if fill and pos >= 12:
                        continue
                    drums.kicks.append((at(b, pos), float(rng.uniform(0.85, 1.0)), 1.0))
                if rng.random() < 0.2:
                    drums.kicks.append((at(b, int(rng.choice([6, 10, 14]))), 0.7, 1.0))
            backbeats = (8,) if art.halftime else (4, 12)
            for pos in backbeats:
                if not (fill and pos >= 12):
                    drums.snares.append((at(b, pos), float(rng.uniform(0.85, 1.0))))
            for pos in range(16):
                if pos not in backbeats and rng.random() < 0.06:
                    drums.snares.append((at(b, pos), 0.25))  # ghost note
            if fill:
                if rng.random() < 0.5:
                    for pos in range(12, 16):
                        drums.snares.append((at(b, pos), 0.5 + 0.12 * (pos - 12)))
                else:
                    for pos, pitch in zip((12, 13, 14, 15), (2.2, 1.9, 1.6, 1.3), strict=True):
                        drums.kicks.append((at(b, pos), 0.8, pitch))
            div = sec["hats"]
            for pos in range(0, 16, div):
                if fill and pos >= 12:
                    break
                accent = 1.0 if pos % 4 == 0 else (0.7 if pos % 2 == 0 else 0.5)
                open_hat = pos == 14 and rng.random() < 0.3
                tau = 0.15 if open_hat else art.hat[1]
                drums.hats.append((at(b, pos), accent * float(rng.uniform(0.8, 1.0)), tau))

    lv = art.levels
    mix = lv[0] * lead_buf + lv[1] * pad_buf + lv[2] * bass_buf
    mix += _render_drums(art, drums, rng, n + tail, sr)
    mix = mix[:n]
    fade = min(n, sr // 100)
    if fade:
        mix[n - fade :] *= np.linspace(1.0, 0.0, fade)
    peak = float(np.max(np.abs(mix))) if n else 0.0
    if peak > 0.0:
        mix *= PEAK / peak
    return mix.astype(np.float32)


# --------------------------------------------------------------------------------------------------
# Public generators
# --------------------------------------------------------------------------------------------------


def same_artist_song(
    seed: SeedLike, artist_seed: SeedLike, *, duration: float, sr: int = 22050
) -> np.ndarray:
    """Generate a composition in the style of the artist ``artist_seed``.

    The artist (:func:`make_artist`) fixes key, scale, tempo range, timbres, drum kit and groove;
    ``seed`` fixes the composition (tempo within the range, chord progressions, form, melody, bass
    line, drum patterns). Songs with the same ``artist_seed`` and different ``seed`` therefore sound
    alike but share no melody -- hard negatives for fingerprinting. ``same_artist_song(s, s)`` is
    exactly ``song(s)``.

    Parameters
    ----------
    seed : int or numpy.random.Generator
        Composition seed (non-negative int), or a Generator that is consumed.
    artist_seed : int or numpy.random.Generator
        Artist seed (non-negative int), or a Generator that is consumed.
    duration : float
        Length in seconds.
    sr : int, optional
        Sample rate in Hz (default 22050).

    Returns
    -------
    numpy.ndarray
        Mono audio, shape ``(round(duration * sr),)``, dtype ``float32``, peak ``PEAK`` (0.89).
    """
    n = _n_samples(duration, sr)
    art = make_artist(artist_seed)
    rng = _rng(seed, _TAG_SONG)
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    return _compose(art, rng, duration, int(sr))


def song(seed: SeedLike, *, duration: float, sr: int = 22050) -> np.ndarray:
    """Generate a synthetic music-like song.

    Random key and scale, chord progression, a melody with harmonics and ADSR envelopes that changes
    every two bars, a bass line, and drums (kick = decaying sine sweep, snare and hi-hat = filtered
    noise bursts) at a tempo of 80-160 BPM. The seed picks both the artist (timbres, key, tempo
    range) and the composition: ``song(s)`` is ``same_artist_song(s, s)``. A Generator ``seed`` is
    turned into one int drawn from it, used for both.

    Parameters
    ----------
    seed : int or numpy.random.Generator
        Non-negative int, or a Generator that is consumed.
    duration : float
        Length in seconds.
    sr : int, optional
        Sample rate in Hz (default 22050).

    Returns
    -------
    numpy.ndarray
        Mono audio, shape ``(round(duration * sr),)``, dtype ``float32``, peak ``PEAK`` (0.89).
    """
    s = _seed_int(seed)
    return same_artist_song(s, s, duration=duration, sr=sr)


def tone(freq: float, *, duration: float, sr: int = 22050, amplitude: float = 0.5) -> np.ndarray:
    """Generate a pure sine tone.

    Parameters
    ----------
    freq : float
        Frequency in Hz.
    duration : float
        Length in seconds.
    sr : int, optional
        Sample rate in Hz (default 22050).
    amplitude : float, optional
        Peak amplitude (default 0.5).

    Returns
    -------
    numpy.ndarray
        Shape ``(round(duration * sr),)``, dtype ``float32``; ``amplitude * sin(2 pi freq t)``.
    """
    n = _n_samples(duration, sr)
    t = np.arange(n, dtype=np.float64) / sr
    return (amplitude * np.sin(2.0 * math.pi * freq * t)).astype(np.float32)


def chirp(
    f0: float,
    f1: float,
    *,
    duration: float,
    sr: int = 22050,
    amplitude: float = 0.5,
    method: Literal["linear", "exponential"] = "linear",
) -> np.ndarray:
    """Generate a sine sweep from ``f0`` to ``f1``.

    Parameters
    ----------
    f0, f1 : float
        Start and end frequency in Hz (both > 0 for ``method="exponential"``).
    duration : float
        Length in seconds.
    sr : int, optional
        Sample rate in Hz (default 22050).
    amplitude : float, optional
        Peak amplitude (default 0.5).
    method : {"linear", "exponential"}, optional
        How the instantaneous frequency moves from ``f0`` to ``f1`` (default linear).

    Returns
    -------
    numpy.ndarray
        Shape ``(round(duration * sr),)``, dtype ``float32``.
    """
    n = _n_samples(duration, sr)
    t = np.arange(n, dtype=np.float64) / sr
    if method == "linear":
        phase = 2.0 * math.pi * (f0 * t + (f1 - f0) * t**2 / (2.0 * max(duration, 1e-12)))
    elif method == "exponential":
        if f0 <= 0 or f1 <= 0:
            raise ParameterError("exponential chirp needs f0 > 0 and f1 > 0")
        if f0 == f1:
            phase = 2.0 * math.pi * f0 * t
        else:
            k = math.log(f1 / f0) / duration
            phase = 2.0 * math.pi * f0 * np.expm1(k * t) / k
    else:
        raise ParameterError(f"method must be 'linear' or 'exponential', got {method!r}")
    return (amplitude * np.sin(phase)).astype(np.float32)


def noise(
    seed: SeedLike,
    *,
    duration: float,
    sr: int = 22050,
    color: Literal["white", "pink"] = "white",
    rms: float = 0.1,
) -> np.ndarray:
    """Generate Gaussian white or pink (1/f) noise.

    Parameters
    ----------
    seed : int or numpy.random.Generator
        Non-negative int, or a Generator that is consumed.
    duration : float
        Length in seconds.
    sr : int, optional
        Sample rate in Hz (default 22050).
    color : {"white", "pink"}, optional
        Spectrum: flat, or falling 3 dB per octave (Kellet's IIR approximation, about 10 Hz to
        ``sr / 2``).
    rms : float, optional
        RMS level of the result (default 0.1, i.e. -20 dBFS).

    Returns
    -------
    numpy.ndarray
        Shape ``(round(duration * sr),)``, dtype ``float32``.
    """
    n = _n_samples(duration, sr)
    if color not in ("white", "pink"):
        raise ParameterError(f"color must be 'white' or 'pink', got {color!r}")
    rng = _rng(seed, _TAG_NOISE)
    x = rng.standard_normal(n)
    if color == "pink":
        b = [0.049922035, -0.095993537, 0.050612699, -0.004408786]
        a = [1.0, -2.494956002, 2.017265875, -0.522189400]
        x = _signal.lfilter(b, a, x)
    if n:
        x *= rms / max(float(np.sqrt(np.mean(x * x))), 1e-12)
    return x.astype(np.float32)


def mix_at_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """Add ``noise`` to ``signal``, scaled so that the signal-to-noise ratio is ``snr_db``.

    Powers are mean squares over the whole of ``signal`` and of the (tiled or truncated) noise.
    The result is not re-normalised and may exceed [-1, 1] (:func:`write_wav` clips).

    Parameters
    ----------
    signal : numpy.ndarray
        Shape ``(n,)``, any float dtype.
    noise : numpy.ndarray
        Shape ``(m,)``, ``m >= 1``; tiled or truncated to ``n`` samples. Must not be all zeros.
    snr_db : float
        Wanted ratio of signal power to noise power, in dB.

    Returns
    -------
    numpy.ndarray
        Shape ``(n,)``, dtype ``float32``.
    """
    s = np.asarray(signal, dtype=np.float64)
    v = np.asarray(noise, dtype=np.float64)
    if s.ndim != 1 or v.ndim != 1:
        raise ParameterError("signal and noise must be 1-D (mono)")
    if s.size == 0:
        return s.astype(np.float32)
    if v.size == 0:
        raise ParameterError("noise is empty")
    if v.size < s.size:
        v = np.tile(v, math.ceil(s.size / v.size))
    v = v[: s.size]
    p_s = float(np.mean(s * s))
    p_n = float(np.mean(v * v))
    if p_n == 0.0:
        raise ParameterError("noise has zero power")
    gain = math.sqrt(p_s / (p_n * 10.0 ** (snr_db / 10.0)))
    return (s + gain * v).astype(np.float32)


def room_ir(seed: SeedLike, *, sr: int, rt60: float = 0.8, length_s: float = 1.2) -> np.ndarray:
    """The impulse response of a fully wet room: white noise under an exponential decay that falls
    60 dB in ``rt60`` seconds, no direct sound, unit energy (float64, ``length_s`` seconds)."""
    if rt60 <= 0 or length_s <= 0:
        raise ParameterError("rt60 and length_s must be positive")
    t = np.arange(_n_samples(length_s, sr)) / sr
    h = _rng(seed, 17).standard_normal(len(t)) * np.exp(-6.9 * t / rt60)
    return h / np.sqrt(h @ h)


def reverberate(x: np.ndarray, seed: SeedLike, *, sr: int, rt60: float = 0.8) -> np.ndarray:
    """``x`` played in the fully wet room ``seed`` (:func:`room_ir`): same length, peak 0.5, float32."""
    y = _signal.fftconvolve(np.asarray(x, np.float64), room_ir(seed, sr=sr, rt60=rt60))[: len(x)]
    peak = float(np.abs(y).max()) if len(y) else 0.0
    return (0.5 * y / peak if peak > 0 else y).astype(np.float32)


def silence(duration: float, sr: int = 22050) -> np.ndarray:
    """Return ``duration`` seconds of digital silence.

    Parameters
    ----------
    duration : float
        Length in seconds.
    sr : int, optional
        Sample rate in Hz (default 22050).

    Returns
    -------
    numpy.ndarray
        Zeros, shape ``(round(duration * sr),)``, dtype ``float32``.
    """
    return np.zeros(_n_samples(duration, sr), dtype=np.float32)


def write_wav(path: str | os.PathLike[str], samples: np.ndarray, sr: int) -> None:
    """Write audio as a 16-bit PCM WAV file (the only function in this module that does I/O).

    Uses the standard-library :mod:`wave` module, so the bytes depend only on the samples and ``sr``.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file; overwritten.
    samples : numpy.ndarray
        Shape ``(n,)`` (mono) or ``(n, channels)``, float in [-1, 1]; values outside are clipped,
        then scaled by 32767 and rounded to nearest.
    sr : int
        Sample rate in Hz.
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] < 1:
        raise ParameterError(f"samples must have shape (n,) or (n, channels), got {x.shape}")
    _n_samples(0.0, sr)  # validates sr
    pcm = np.round(np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2")
    with wave.open(os.fspath(path), "wb") as w:
        w.setnchannels(x.shape[1])
        w.setsampwidth(2)
        w.setframerate(int(sr))
        w.writeframes(pcm.tobytes())
