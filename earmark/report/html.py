"""The human-readable report: one self-contained HTML page for lawyers and rights managers.

The page is rendered with Jinja2 (autoescaping on: dataset paths and catalogue metadata come from other
parties and are hostile) and carries its figures inline as PNG ``data:`` URIs drawn with matplotlib's
Agg renderer, so it needs no JavaScript and fetches nothing; a Content-Security-Policy in the page
forbids both. Characters that change how text is shown without being visible (bidi overrides, other
control and format characters, lone surrogates from undecodable file names) are printed as ``\\u202e``
style escapes, so the path a reader sees is the path that was scanned.

All numbers come from :class:`~earmark.report.findings.Findings` and the scan's report records; the
page adds no timestamp of its own, so the same inputs give the same bytes.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import shlex
import unicodedata
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib
import numpy as np
import PIL.Image
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup, escape
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from earmark.audio.decode import open_stream
from earmark.errors import DecodeError
from earmark.report.findings import Finding, Findings, merge_intervals

__all__ = [
    "INTERNAL_NOTICE", "LIMITATIONS", "Plot", "clock", "coverage_depth", "render_html", "tree", "visible",
]

log = logging.getLogger(__name__)

INTERNAL_NOTICE = "INTERNAL — contains spectrograms of catalogue audio, do not share"

#: Printed in every report (design note §4.5); a ``limitations`` entry of ``methods`` adds to these.
LIMITATIONS = (
    "Only registered catalogue recordings are searched. Absence of a match is not absence of the work; "
    "the recall figures bound the miss rate per transform.",
    "The report shows presence in the dataset snapshot scanned, not use in training or memorisation by "
    "a model.",
    "It identifies the sound recording (master). It does not detect covers, interpolations or "
    "compositions.",
    "Heavy transforms (large pitch or tempo shifts, music mixed on top, clips shorter than a few "
    "seconds) have lower recall; see the benchmark figures under Methods.",
    "Items that could not be decoded are listed below with the reason.",
)

DPI = 100  # with 128-colour PNG, a 70-recording, 900-item report is about 3 MB
PNG_COLOURS = 128
MAX_TIMELINE_ITEMS = 40  # rows in one item-timeline figure; every item is still in the tables
SPECTROGRAM_SR = 11025
SPECTROGRAM_MAX_S = 900.0

#: One colour per item of a recording (cycled: the item numbers, not the colours, identify an item).
ITEM_COLOURS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#393b79", "#ad494a", "#637939", "#8c6d31", "#7b4173", "#3182bd",
)

_RC = {
    "font.family": "DejaVu Sans",  # shipped with matplotlib: the same glyphs on every machine
    "font.size": 8,
    "text.parse_math": False,  # never read ``$...$`` in text as mathtext
    "axes.spines.top": False,
    "axes.spines.right": False,
}


# ------------------------------------------------------------------------------------ text filters
def visible(value: object) -> Markup:
    """Escape ``value`` for HTML and show invisible or direction-changing characters as escapes.

    Control (Cc), format (Cf, e.g. U+202E RIGHT-TO-LEFT OVERRIDE), line/paragraph separator and
    surrogate (Cs) characters are replaced by ``<span class="ctl">\\u202e</span>``.
    """
    s = "" if value is None else str(value)
    out: list[str] = []
    for ch in s:
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            cp = ord(ch)
            code = f"\\x{cp:02x}" if cp < 0x100 else f"\\u{cp:04x}" if cp < 0x10000 else f"\\U{cp:08x}"
            out.append(f'<span class="ctl">{code}</span>')
        else:
            out.append(str(escape(ch)))
    return Markup("".join(out))


def clock(seconds: float | None) -> str:
    """``m:ss.s`` or ``h:mm:ss.s``; ``—`` for an unknown time."""
    if seconds is None:
        return "—"
    tenths = round(float(seconds) * 10)
    sign = "-" if tenths < 0 else ""
    m, t = divmod(abs(tenths), 600)
    h, m = divmod(m, 60)
    sec = f"{t // 10:02d}.{t % 10}"
    return f"{sign}{h}:{m:02d}:{sec}" if h else f"{sign}{m}:{sec}"


def percent(fraction: float | None) -> str:
    """A fraction in [0, 1] as a percentage with one decimal."""
    return "—" if fraction is None else f"{100 * float(fraction):.1f} %"


def scalar(value: object) -> str:
    """A JSON scalar as text: floats to 6 significant digits, booleans as yes/no."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


# --------------------------------------------------------------------- generic tables of JSON data
def tree(value: object) -> dict:
    """A JSON value as a node the template draws: ``text``, ``list``, ``kv`` or ``table``.

    A list of objects, or an object whose values are all objects (e.g. recall per transform), becomes
    a table with the union of their keys as columns; other objects become key/value tables; lists of
    scalars are a list, or one line of text inside a table cell.
    """
    if isinstance(value, Mapping):
        if value and all(isinstance(v, Mapping) for v in value.values()):
            return _table([(str(k), v) for k, v in value.items()])
        return {"kind": "kv", "rows": [(_label(k), tree(v)) for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, Mapping) for v in value):
            return _table([(None, v) for v in value])
        if all(not isinstance(v, (Mapping, list, tuple)) for v in value):
            return {"kind": "list", "items": [scalar(v) for v in value]}
        return {"kind": "list", "items": [tree(v) for v in value]}
    return {"kind": "text", "text": scalar(value)}


def _table(rows: list[tuple[str | None, Mapping]]) -> dict:
    columns: list[str] = []
    for _, r in rows:
        columns += [str(k) for k in r if str(k) not in columns]
    return {
        "kind": "table",
        "keyed": rows[0][0] is not None,
        "columns": [_label(c) for c in columns],
        "rows": [(key, [_cell(r.get(c)) for c in columns]) for key, r in rows],
    }


def _cell(value: object) -> dict:
    if isinstance(value, (list, tuple)) and all(not isinstance(v, (Mapping, list, tuple)) for v in value):
        return {"kind": "text", "text": ", ".join(scalar(v) for v in value)}
    return tree(value)


def _label(key: object) -> str:
    return str(key).replace("_", " ")


# ------------------------------------------------------------------------------------------ items
@dataclass(frozen=True)
class _Item:
    """One dataset item holding a recording, numbered within that recording by strongest evidence."""

    number: int
    file: str
    sha256: str
    duration_s: float | None
    colour: str
    matches: tuple[dict, ...]

    @property
    def matched_s(self) -> float:
        return sum(m["query_end"] - m["query_start"] for m in self.matches)

    @property
    def best_score(self) -> float:
        return max(m["score"] for m in self.matches)


# ----------------------------------------------------------------------------------------- figures
@dataclass(frozen=True)
class Plot:
    """A PNG figure as a ``data:`` URI with its pixel size."""

    uri: str
    width: int
    height: int
    alt: str


def _figure(width: float, height: float) -> Figure:
    """A figure ``width`` × ``height`` inches at the report's resolution.

    Axes are placed with fixed margins (:func:`_axes`), not a layout engine: the same place in every
    figure, and half the drawing time.
    """
    return Figure(figsize=(width, height), dpi=DPI)


def _axes(fig: Figure, *, left: float = 0.75, right: float = 0.25, bottom: float = 0.45, top: float = 0.1,
          **kw: object):
    """Axes inset by the given margins (inches) from the figure's edges."""
    w, h = fig.get_size_inches()
    return fig.add_axes((left / w, bottom / h, 1 - (left + right) / w, 1 - (bottom + top) / h), **kw)


def _png(fig: Figure, alt: str) -> Plot:
    """Draw ``fig`` with Agg and encode it as a 128-colour PNG (a quarter of the bytes of full colour;
    the figures are flat colours). No text chunks, so the bytes depend on the drawing alone."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    width, height = canvas.get_width_height()
    rgb = PIL.Image.frombuffer("RGBA", (width, height), canvas.buffer_rgba()).convert("RGB")
    buf = io.BytesIO()
    rgb.quantize(colors=PNG_COLOURS, method=PIL.Image.Quantize.MEDIANCUT,
                 dither=PIL.Image.Dither.NONE).save(buf, format="PNG")
    uri = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return Plot(uri, width, height, alt)


def _mmss(x: float, _pos: object = None) -> str:
    m, s = divmod(int(round(x)), 60)
    return f"{m}:{s:02d}"


def _time_axis(ax, label: str, lo: float, hi: float, axis: str = "x") -> None:
    a = ax.xaxis if axis == "x" else ax.yaxis
    a.set_major_formatter(FuncFormatter(_mmss))
    a.set_major_locator(MaxNLocator(nbins=10, steps=[1, 2, 3, 5, 6, 10]))
    (ax.set_xlim if axis == "x" else ax.set_ylim)(lo, hi)
    (ax.set_xlabel if axis == "x" else ax.set_ylabel)(label)


def coverage_depth(
    item_intervals: Sequence[Sequence[tuple[float, float]]],
) -> list[tuple[float, float, int]]:
    """Pieces ``(start, end, n)`` of the recording covered by ``n >= 1`` items.

    Each item's intervals are merged first, so an item counts once however many of its matches
    overlap.
    """
    events: dict[float, int] = defaultdict(int)
    for ivs in item_intervals:
        for a, b in merge_intervals(ivs):
            if b > a:
                events[a] += 1
                events[b] -= 1
    out, depth, prev = [], 0, None
    for t in sorted(events):
        if prev is not None and depth > 0 and t > prev:
            out.append((prev, t, depth))
        depth += events[t]
        prev = t
    return out


def coverage_figure(duration_s: float, item_intervals: Sequence[Sequence[tuple[float, float]]]) -> Plot:
    """The recording's timeline with its matched intervals shaded by the number of items holding them."""
    pieces = coverage_depth(item_intervals)
    end = max([duration_s] + [b for _, b, _ in pieces]) or 1.0
    top = max([n for *_, n in pieces], default=1)
    cmap = ListedColormap(matplotlib.colormaps["Blues"](np.linspace(0.35, 1.0, top)))
    norm = BoundaryNorm(np.arange(0.5, top + 1), cmap.N)
    fig = _figure(8.0, 1.2)
    ax = _axes(fig, right=1.0)
    ax.broken_barh([(0.0, end)], (0, 1), facecolors="#eeeeee", edgecolors="#999999", linewidth=0.5)
    if pieces:
        ax.broken_barh([(a, b - a) for a, b, _ in pieces], (0, 1),
                       facecolors=[cmap(norm(n)) for *_, n in pieces], linewidth=0)
        ticks = [t for t in MaxNLocator(nbins=4, integer=True).tick_values(1, top) if 1 <= t <= top]
        cax = _axes(fig, left=7.15, right=0.7)
        bar = fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), cax=cax, ticks=ticks or [1],
                           format=FuncFormatter(lambda x, _pos: f"{x:.0f}"))
        bar.minorticks_off()
        bar.set_label("items")
    ax.set_ylim(0, 1)
    ax.set_yticks([])
    ax.spines["left"].set_visible(False)
    _time_axis(ax, "time in the recording (m:ss)", 0.0, end)
    return _png(fig, "coverage of the recording by matched items")


def evidence_figure(duration_s: float, items: Sequence[_Item]) -> Plot:
    """Item time against recording time of every match, one line segment each, coloured by item."""
    fig = _figure(8.0, 3.2)
    ax = _axes(fig)
    x_end, y_end = 1.0, max(duration_s, 1.0)
    label = len(items) <= 12
    for it in items:
        for m in it.matches:
            ax.plot([m["query_start"], m["query_end"]], [m["ref_start"], m["ref_end"]], color=it.colour,
                    linewidth=2.2, linestyle="--" if m.get("alternative") else "-", solid_capstyle="butt")
            if label:
                ax.annotate(f"#{it.number}", (m["query_start"], m["ref_start"]), xytext=(2, 2),
                            textcoords="offset points", color=it.colour, fontsize=7)
            x_end = max(x_end, m["query_end"])
            y_end = max(y_end, m["ref_end"])
        x_end = max(x_end, it.duration_s or 0.0)
    ax.grid(True, color="#dddddd", linewidth=0.5)
    _time_axis(ax, "time in the dataset item (m:ss)", 0.0, x_end)
    _time_axis(ax, "time in the recording (m:ss)", 0.0, y_end, axis="y")
    return _png(fig, "aligned evidence: item time against recording time for each match")


def timeline_figure(items: Sequence[_Item]) -> Plot:
    """One bar per item (its whole duration) with the spans matched to this recording on top."""
    shown = list(items)[:MAX_TIMELINE_ITEMS]
    fig = _figure(8.0, 0.6 + 0.24 * len(shown))
    ax = _axes(fig)
    x_end = 1.0
    for row, it in enumerate(shown):
        y = len(shown) - 1 - row
        spans = [(m["query_start"], m["query_end"]) for m in it.matches]
        length = max([it.duration_s or 0.0] + [b for _, b in spans])
        x_end = max(x_end, length)
        ax.broken_barh([(0.0, length)], (y + 0.15, 0.7), facecolors="#eeeeee", edgecolors="#999999",
                       linewidth=0.5)
        ax.broken_barh([(a, b - a) for a, b in spans], (y + 0.15, 0.7), facecolors=it.colour, linewidth=0)
    ax.set_yticks([len(shown) - 1 - r + 0.5 for r in range(len(shown))],
                  [f"#{it.number}" for it in shown])
    ax.set_ylim(0, max(len(shown), 1))
    ax.tick_params(axis="y", length=0)
    ax.spines["left"].set_visible(False)
    _time_axis(ax, "time in the dataset item (m:ss)", 0.0, x_end)
    return _png(fig, "timeline of each matched item with its matched spans")


def spectrogram_figure(samples: np.ndarray, *, sr: int, coverage: Sequence[tuple[float, float]]) -> Plot:
    """Mel spectrogram of a catalogue recording (mono ``samples`` at ``sr`` Hz) with its matched
    intervals (seconds) marked above it.

    Catalogue audio can be re-synthesised from a spectrogram: pages carrying one are internal.
    """
    import librosa  # only the internal report needs it

    mel = librosa.feature.melspectrogram(y=np.asarray(samples, dtype=np.float32), sr=sr, n_fft=1024,
                                         hop_length=512, n_mels=64)
    db = librosa.power_to_db(mel, ref=np.max, top_db=80.0)
    dur = max(len(samples) / sr, 1e-3)
    fig = _figure(8.0, 2.2)
    ax = _axes(fig, top=0.3)
    strip = _axes(fig, bottom=1.95, top=0.1, sharex=ax)
    strip.broken_barh([(a, b - a) for a, b in coverage], (0, 1), facecolors="#1f77b4", linewidth=0)
    strip.set_ylim(0, 1)
    strip.set_yticks([])
    strip.tick_params(axis="x", length=0, labelbottom=False)
    strip.set_axis_off()
    ax.imshow(db, origin="lower", aspect="auto", cmap="magma", extent=(0.0, dur, 0, db.shape[0]),
              interpolation="nearest")
    ax.set_ylabel("mel band")
    _time_axis(ax, "time in the recording (m:ss)", 0.0, dur)
    return _png(fig, "mel spectrogram of the catalogue recording, matched intervals marked above")


def _read_catalogue_audio(path: str | os.PathLike) -> np.ndarray:
    """The first ``SPECTROGRAM_MAX_S`` seconds of a catalogue file, mono at ``SPECTROGRAM_SR`` Hz."""
    limit = int(SPECTROGRAM_MAX_S * SPECTROGRAM_SR)
    blocks, n = [], 0
    with open_stream(path, sr=SPECTROGRAM_SR) as stream:
        for block in stream.blocks():
            blocks.append(block)
            n += len(block)
            if n >= limit:
                break
    return np.concatenate(blocks)[:limit] if blocks else np.zeros(0, np.float32)


# ------------------------------------------------------------------------------------------- page
def _items(pairs: Sequence[tuple[dict, dict]]) -> list[_Item]:
    by_file: dict[str, list[dict]] = defaultdict(list)
    rec_of: dict[str, dict] = {}
    for rec, m in pairs:
        by_file[rec["file"]].append(m)
        rec_of[rec["file"]] = rec
    order = sorted(by_file, key=lambda f: (-max(m["score"] for m in by_file[f]), f))
    return [
        _Item(number=i + 1, file=f, sha256=str(rec_of[f].get("sha256", "")),
              duration_s=rec_of[f].get("duration_s"), colour=ITEM_COLOURS[i % len(ITEM_COLOURS)],
              matches=tuple(sorted(by_file[f], key=lambda m: (m["query_start"], m["ref_start"]))))
        for i, f in enumerate(order)
    ]


@dataclass(frozen=True)
class _Recording:
    """What the page shows of one recording found."""

    anchor: str  # the section's id, from its position (never from hostile metadata)
    f: Finding
    items: tuple[_Item, ...]
    coverage: Plot
    evidence: Plot
    timeline: Plot
    spectrogram: Plot | None = None
    spectrogram_note: str = ""

    @property
    def number_of(self) -> dict[str, int]:
        return {it.file: it.number for it in self.items}

    @property
    def matches(self) -> list[tuple[_Item, dict]]:
        return [(it, m) for it in self.items for m in it.matches]

    @property
    def timeline_cut(self) -> int:
        return max(0, len(self.items) - MAX_TIMELINE_ITEMS)


def _recording(
    index: int, finding: Finding, pairs: Sequence[tuple[dict, dict]], internal_audio: Mapping[str, str] | None
) -> _Recording:
    items = _items(pairs)
    item_intervals = [[(m["ref_start"], m["ref_end"]) for m in it.matches if not m.get("alternative")]
                      for it in items]
    spectrogram, note = None, ""
    if internal_audio is not None:
        path = internal_audio.get(finding.track_id)
        if path is None:
            note = "No catalogue audio was given for this recording."
        else:
            try:
                samples = _read_catalogue_audio(path)
            except DecodeError as e:  # one unreadable file must not lose the whole report
                log.warning("no spectrogram of %s: %s", finding.track_id, e)
                note = f"The catalogue audio could not be read: {e}"
            else:
                spectrogram = spectrogram_figure(samples, sr=SPECTROGRAM_SR,
                                                 coverage=finding.coverage_intervals)
    return _Recording(
        anchor=f"rec-{index}",
        f=finding,
        items=tuple(items),
        coverage=coverage_figure(finding.duration_s, item_intervals),
        evidence=evidence_figure(finding.duration_s, items),
        timeline=timeline_figure(items),
        spectrogram=spectrogram,
        spectrogram_note=note,
    )


def _manifest_view(manifest: Mapping) -> dict:
    m = dict(manifest)
    if isinstance(m.get("command_line"), (list, tuple)):
        m["command_line"] = shlex.join(str(a) for a in m["command_line"])
    return m


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("earmark.report", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(t=visible, clock=clock, pct=percent, scalar=scalar)
    return env


def render_html(
    *,
    findings: Findings,
    records: Sequence[dict],
    manifest: Mapping,
    methods: Mapping,
    title: str = "earmark match report",
    internal_audio: Mapping[str, str] | None = None,
) -> str:
    """Render a scan's findings as one self-contained HTML page.

    Parameters
    ----------
    findings : Findings
        From :func:`~earmark.report.findings.build_findings` over ``records``.
    records : sequence of dict
        The scan's report lines (``file, status, sha256, duration_s, matches``...).
    manifest : mapping
        The scan manifest (``earmark_version, source, catalogue_digest, params_id, settings,
        versions, command_line, started_at, finished_at``...); printed in full under Reproducibility.
    methods : mapping
        Thresholds, catalogue size, benchmark figures and the like, printed generically as tables.
        A ``limitations`` entry (a list of sentences) is printed after the standard limitations.
    title : str
        The page's title.
    internal_audio : mapping of str to path, optional
        ``track_id`` → catalogue audio file. When given, each recording gets a mel spectrogram and the
        page is marked internal: spectrograms of catalogue audio can be turned back into sound.

    Returns
    -------
    str
        The page (UTF-8 text when encoded; no scripts, no external references).
    """
    pairs: dict[str, list[tuple[dict, dict]]] = defaultdict(list)
    for rec in records:
        for m in rec.get("matches") or []:
            if not m.get("shares_audio_with"):  # the finding of the recording it names (build_findings)
                pairs[m["track_id"]].append((rec, m))
    extra = methods.get("limitations") or ()
    extra = [extra] if isinstance(extra, str) else [scalar(x) for x in extra]
    with matplotlib.rc_context(_RC):
        recordings = [_recording(i + 1, f, pairs[f.track_id], internal_audio)
                      for i, f in enumerate(findings.findings)]
    by_file = sorted(records, key=lambda r: r["file"])
    return _environment().get_template("report.html.j2").render(
        title=title,
        internal=internal_audio is not None,
        internal_notice=INTERNAL_NOTICE,
        totals=findings.totals,
        holders=findings.holders,
        recordings=recordings,
        manifest=_manifest_view(manifest),
        manifest_tree=tree(_manifest_view(manifest)),
        methods_tree=tree({k: v for k, v in methods.items() if k != "limitations"}),
        limitations=list(LIMITATIONS) + [x for x in extra if x not in LIMITATIONS],
        errors=[r for r in by_file if r.get("status") == "error"],
        no_signal=[r for r in by_file if r.get("status") == "no_signal"],
    )
