"""The HTML report: complete, escaped, self-contained, and clean in a real browser.

Records and findings are built from hand-written dicts (no scan): four registered recordings, three of
them found in seven items, with hostile text in a path, a title and an error message.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from earmark import synth
from earmark.report.findings import Licence, build_findings
from earmark.report.html import INTERNAL_NOTICE, clock, coverage_depth, render_html, tree, visible

HOSTILE_PATH = '/data/<script>alert(1)</script>"onerror=alert(2) x.mp3'
HOSTILE_TITLE = '<img src=x onerror="alert(3)"> "onerror=alert(4)'
BIDI_PATH = "/data/evil\u202egpj.mp3"  # shows as "evilmp3.jpg" unless the override is made visible
SURROGATE_PATH = "/data/bad-\udcff-name.mp3"  # an undecodable byte kept by surrogateescape
CHROMIUM = Path("/usr/bin/chromium")

CATALOGUE = [
    {"track_id": "T001", "isrc": "GBAAA2400001", "title": "Night Drive", "artist": "Alpha",
     "rights_holder": "Blue Label", "duration_s": 180.0},
    {"track_id": "T002", "isrc": "GBAAA2400002", "title": HOSTILE_TITLE, "artist": "Beta",
     "rights_holder": "Blue Label", "duration_s": 200.0},
    {"track_id": "T003", "isrc": "GBAAA2400003", "title": "Gamma Song", "artist": "Gamma",
     "rights_holder": "Red Records", "duration_s": 150.0},
    {"track_id": "T004", "isrc": "GBAAA2400004", "title": "Never Found", "artist": "Delta",
     "rights_holder": "Red Records", "duration_s": 120.0},
]
META = {r["track_id"]: r for r in CATALOGUE}


def _match(tid: str, qs: float, qe: float, rs: float, re: float, score: float, **kw: object) -> dict:
    return {"track_id": tid, "rec_id": int(tid[1:]), "query_start": qs, "query_end": qe, "ref_start": rs,
            "ref_end": re, "matched_duration": qe - qs, "score": score, "fmp": 10.0 ** -score,
            "ber": 0.12, "chance_ber": 0.5, "n_items": 200, "n_distinct": 180, "alternative": False,
            "family": "chromaprint", "time_factor": 1.0, "pitch_st": 0.0, "transform": "none",
            "recording": META[tid], **kw}


def _record(file: str, status: str, matches: tuple[dict, ...] | list[dict] = (), duration: float = 60.0,
            **kw: object) -> dict:
    sha = hashlib.sha256(file.encode("utf-8", "surrogateescape")).hexdigest()
    return {"file": file, "status": status, "matches": list(matches), "sha256": sha,
            "size_bytes": 123456, "duration_s": duration, "codec": "mp3", **kw}


RECORDS = [
    _record("/data/a.mp3", "match", [_match("T001", 0.0, 30.0, 10.0, 40.0, 12.5)]),
    _record(HOSTILE_PATH, "match", [_match("T001", 5.0, 25.0, 100.0, 120.0, 8.1),
                                    _match("T002", 30.0, 60.0, 0.0, 30.0, 15.0, transform="reencode")]),
    _record("/data/c.flac", "match", [_match("T002", 0.0, 20.0, 50.0, 70.0, 9.0),
                                      _match("T002", 0.0, 20.0, 120.0, 140.0, 7.0, alternative=True)],
            duration=45.0),
    _record("/data/d.wav", "match", [_match("T003", 0.0, 150.0, 0.0, 150.0, 40.0)], duration=150.0),
    _record("/data/e.mp3", "no_match"),
    # found by the landmark family alone: no bit error rate, factors of a 20 % speed-up
    _record("/data/f.mp3", "match", [_match("T003", 0.0, 10.0, 20.0, 32.0, 55.0, ber=None, chance_ber=None,
                                            n_items=0, n_distinct=0, family="landmark", anchors=120,
                                            time_factor=1.2, pitch_st=3.156, transform="speed")],
            duration=10.0),
    _record(BIDI_PATH, "no_signal", reason="silent (-90 dBFS)"),
    {"file": SURROGATE_PATH, "status": "error", "error": "undecodable: <b>moov atom</b> missing",
     "error_kind": "decode", "matches": [], "sha256": "ab" * 32, "size_bytes": 17},
]
MANIFEST = {
    "format": "earmark-scan", "format_version": 1, "earmark_version": "0.1.0", "source": "/data",
    "catalogue": "/cat", "catalogue_digest": "c0ffee" * 10, "catalogue_recordings": 4, "params_id": "cp-1234",
    "settings": {"min_score": 6.0, "workers": 2, "limits": {"max_seconds": 3600}},
    "command_line": ["earmark", "scan", "/data", "--out", "out dir"],
    "versions": {"python": "3.11.9", "libchromaprint": "1.5.1"},
    "started_at": "2026-11-22T10:00:00Z", "finished_at": "2026-11-22T10:05:00Z",
}
METHODS = {
    "thresholds": {"min_score": 6.0, "frozen_on": "2026-11-01"},
    "catalogue_recordings": 4,
    "recall_per_transform": {"aac_96k": {"recall": 1.0, "recall_95ci": [0.862, 1.0], "files": 24},
                             "clip_3s": {"recall": 0.0, "recall_95ci": [0.0, 0.138], "files": 24}},
    "false_positive_rate_upper_95": 0.0143,
    "negatives": [{"kind": "speech", "files": 30}, {"kind": "noise", "files": 30}],
    "limitations": ["Benchmark audio is synthetic."],
}


def _findings(records: list[dict] = RECORDS):
    return build_findings(records, CATALOGUE, licences=[Licence(7, "Acme AI", "*", ("T003",))],
                          dataset="acme-audio", date="2026-11-22")


def _render(**kw: object) -> str:
    args = {"findings": _findings(), "records": RECORDS, "manifest": MANIFEST, "methods": METHODS} | kw
    return render_html(**args)


class _Page(HTMLParser):
    """Every start tag of a page with its attributes, and its text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag]


@pytest.fixture(scope="module")
def page() -> str:
    return _render(title=f"Case 42 {HOSTILE_TITLE}")


# ------------------------------------------------------------------------------------------ content
def test_page_has_every_section_and_one_row_per_recording(page: str) -> None:
    doc = _Page(page)
    ids = {a.get("id") for _, a in doc.tags}
    assert {"summary", "holders", "findings", "findings-table", "methods", "limitations", "errors",
            "no-signal", "reproducibility", "rec-1", "rec-2", "rec-3"} <= ids
    body = page.split('id="findings-table"', 1)[1].split("</table>", 1)[0].split("<tbody>", 1)[1]
    assert body.count("<tr>") == 3
    # coverage, aligned evidence and item timeline for each recording; all inline PNG with a size
    imgs = doc.all("img")
    assert len(imgs) == 3 * 3
    for a in imgs:
        assert a["src"].startswith("data:image/png;base64,")
        assert base64.b64decode(a["src"].split(",", 1)[1]).startswith(b"\x89PNG\r\n\x1a\n")
        assert int(a["width"]) > 100 and int(a["height"]) > 50
    text = " ".join(" ".join(doc.text).split())
    assert "Recordings found 3 of 4 registered" in text
    assert "Items scanned 8" in text and "Items that could not be read 1" in text
    assert "Items with no usable signal 1" in text
    assert "Recordings found without a licence 2" in text
    assert "licensed (licence 7)" in text
    assert "not show that the recordings were used to train a model" in text  # the scope caveat
    assert "earmark scan /data --out 'out dir'" in text  # the command line, shell-quoted


def test_a_landmark_only_match_is_summarised_by_its_anchors_and_factors(page: str) -> None:
    f = {x.track_id: x for x in _findings().findings}["T003"]
    assert f.strongest_match["family"] == "landmark" and f.strongest_match["ber"] is None
    text = re.sub(r"\s+", " ", " ".join(_Page(page).text))
    assert "120 landmark anchors, time factor 1.2, pitch 3.156 st" in text


def test_an_envelope_match_is_summarised_by_its_correlation_and_bits() -> None:
    records = [_record("/data/room.mp3", "match", [
        _match("T001", 0.0, 10.0, 40.0, 50.0, 14.2, family="envelope", envelope_r=0.8123, ber=0.2311)],
        duration=10.0)]
    html = render_html(findings=_findings(records), records=records, manifest=MANIFEST, methods=METHODS)
    text = re.sub(r"\s+", " ", " ".join(_Page(html).text))
    assert "bit error rate 0.2311, spectral envelope correlation 0.8123 over the whole item" in text
    assert "spectral envelope correlation" not in re.sub(r"\s+", " ", " ".join(_Page(_render()).text))


def test_a_mixture_match_is_summarised_by_its_peaks_and_masking() -> None:
    records = [_record("/data/under_talk.mp3", "match", [
        _match("T001", 0.0, 10.0, 40.0, 50.0, 19.4, family="mixture", ber=None, n_items=279,
               n_distinct=124, unmasked=0.0048)], duration=10.0)]
    html = render_html(findings=_findings(records), records=records, manifest=MANIFEST, methods=METHODS)
    text = re.sub(r"\s+", " ", " ".join(_Page(html).text))
    assert ("score 19.4, 124 of the recording's 279 spectral peaks found in the item, 0.5 % of its loud "
            "peaks missing where nothing could hide them, over the whole item") in text
    assert "spectral peaks found" not in re.sub(r"\s+", " ", " ".join(_Page(_render()).text))


def test_methods_are_tables_and_limitations_are_always_printed(page: str) -> None:
    methods = page.split('id="methods"', 1)[1].split('id="limitations"', 1)[0]
    assert "<th>aac_96k</th>" in methods and "<td>0.862, 1</td>" in methods  # dict of records: a table
    assert "<th>speech</th>" not in methods and "<td>speech</td>" in methods  # list of records: a table
    assert "recall 95ci" in methods and "frozen on" in methods
    limitations = page.split('id="limitations"', 1)[1].split("</section>", 1)[0]
    assert "Benchmark audio is synthetic." in limitations
    assert "not use in training" in limitations
    assert "limitations" not in methods


def test_empty_scan_renders() -> None:
    records = [_record("/data/e.mp3", "no_match")]
    html = render_html(findings=_findings(records), records=records, manifest={}, methods={})
    assert "No registered recording was found" in html
    assert "<img" not in html
    assert "Recordings found without a licence" in html


def test_rendering_is_deterministic(page: str) -> None:
    assert _render(title=f"Case 42 {HOSTILE_TITLE}") == page


# ----------------------------------------------------------------------------------- hostile input
def test_hostile_paths_titles_and_reasons_are_escaped(page: str) -> None:
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&#34;onerror=alert(2) x.mp3" in page
    assert '"onerror=' not in page and "<img src=x" not in page and "<b>moov atom</b>" not in page
    assert "&lt;img src=x onerror=&#34;alert(3)&#34;&gt;" in page
    assert "<title>Case 42 &lt;img src=x" in page
    doc = _Page(page)
    assert not doc.all("script")
    assert not [(t, k) for t, a in doc.tags for k in a if k.startswith("on")]  # no event handlers at all
    assert {a["src"][:5] for a in doc.all("img")} == {"data:"}


def test_invisible_characters_are_shown_not_obeyed(page: str) -> None:
    assert "\u202e" not in page and '/data/evil<span class="ctl">\\u202e</span>gpj.mp3' in page
    assert '/data/bad-<span class="ctl">\\udcff</span>-name.mp3' in page
    page.encode("utf-8")  # no lone surrogate left in the text
    assert str(visible("a\tb\x00<")) == 'a<span class="ctl">\\x09</span>b<span class="ctl">\\x00</span>&lt;'


def test_nothing_points_outside_the_page(page: str) -> None:
    doc = _Page(page)
    for tag, attrs in doc.tags:
        for k in ("src", "href", "srcset", "action", "poster", "data", "formaction", "background"):
            v = (attrs.get(k) or "").strip()
            assert not v or v.startswith(("data:", "#")), (tag, k, v[:80])
    assert "@import" not in page and "url(" not in page
    assert "default-src 'none'; img-src data:" in page  # the CSP forbids scripts and fetches anyway


# ----------------------------------------------------------------------------- internal spectrograms
def test_no_spectrogram_without_internal_audio(page: str) -> None:
    assert "spectrogram" not in page.lower()
    assert "INTERNAL" not in page


def test_internal_audio_adds_spectrograms_and_marks_the_page(tmp_path: Path) -> None:
    wav = tmp_path / "t001.wav"
    synth.write_wav(wav, synth.song(3, duration=6.0, sr=22050), 22050)
    html = _render(internal_audio={"T001": str(wav), "T002": str(tmp_path / "missing.wav")})
    assert html.count(INTERNAL_NOTICE) >= 2 and "<title>[INTERNAL]" in html
    doc = _Page(html)
    assert len(doc.all("img")) == 3 * 3 + 1  # T001's spectrogram; T002's audio is unreadable
    spectro = html.split('id="rec-1"', 1)[1].split('id="rec-2"', 1)[0]
    assert "Mel spectrogram of the catalogue recording" in spectro
    assert "could not be read" in html.split('id="rec-2"', 1)[1].split('id="rec-3"', 1)[0]
    assert "No catalogue audio was given" in html.split('id="rec-3"', 1)[1]


# ------------------------------------------------------------------------------------------ helpers
def test_coverage_depth_counts_each_item_once() -> None:
    # item 1 has two overlapping matches (one copy), item 2 overlaps it in the middle
    assert coverage_depth([[(0, 10), (5, 12)], [(8, 20)]]) == [(0, 8, 1), (8, 12, 2), (12, 20, 1)]
    assert coverage_depth([]) == []


def test_clock_and_tree() -> None:
    assert [clock(59.96), clock(61.25), clock(3725.0), clock(None)] == ["1:00.0", "1:01.2", "1:02:05.0", "—"]
    assert tree({"a": 1.23456789, "b": [1, 2], "c": None}) == {"kind": "kv", "rows": [
        ("a", {"kind": "text", "text": "1.23457"}), ("b", {"kind": "list", "items": ["1", "2"]}),
        ("c", {"kind": "text", "text": "—"})]}


# ------------------------------------------------------------------------------------------ browser
class _DevTools:
    """Headless Chromium driven over the DevTools protocol (browser websocket, one flat session)."""

    def __init__(self, profile: Path) -> None:
        websocket = pytest.importorskip("websocket", reason="websocket-client is needed to drive Chromium")
        self.proc = subprocess.Popen(
            [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", "--no-default-browser-check", "--remote-debugging-port=0",
             f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 15
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                pytest.fail("headless Chromium did not start")
            time.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        self.ws = websocket.create_connection(f"ws://127.0.0.1:{port}{path}", timeout=15,
                                              suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []
        self.session: str | None = None

    def call(self, method: str, **params: object) -> dict:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params}
        if self.session:
            msg["sessionId"] = self.session
        self.ws.send(json.dumps(msg))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self.next_id:
                assert "error" not in reply, (method, reply["error"])
                return reply["result"]
            if "method" in reply:
                self.events.append(reply)

    def wait_for(self, event: str, timeout: float = 15.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in self.events:
                if e["method"] == event:
                    return e
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            msg = json.loads(self.ws.recv())
            if "method" in msg:
                self.events.append(msg)
        pytest.fail(f"no {event} within {timeout} s")

    def evaluate(self, expression: str) -> object:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"]["value"]

    def close(self) -> None:
        if getattr(self, "ws", None):
            self.ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                    "(apt-get install chromium chromium-driver)")
def test_page_in_headless_chromium(page: str, tmp_path: Path) -> None:
    html_path = tmp_path / "report.html"
    html_path.write_text(page, encoding="utf-8")
    url = html_path.as_uri()
    browser = _DevTools(tmp_path / "profile")
    try:
        target = browser.call("Target.createTarget", url="about:blank")["targetId"]
        browser.session = browser.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            browser.call(f"{domain}.enable")
        browser.call("Emulation.setDeviceMetricsOverride", width=1200, height=1600, deviceScaleFactor=1,
                     mobile=False)
        browser.call("Page.navigate", url=url)
        browser.wait_for("Page.loadEventFired")
        rows = browser.evaluate("document.querySelectorAll('#findings-table tbody tr').length")
        images = browser.evaluate("Array.from(document.images, i => [i.complete, i.naturalWidth])")
        scripts = browser.evaluate("document.scripts.length")
        shot = base64.b64decode(browser.call("Page.captureScreenshot", format="png")["data"])
    finally:
        browser.close()

    events = browser.events
    problems = [e for e in events
                if e["method"] in ("Runtime.exceptionThrown", "Page.javascriptDialogOpening")]
    problems += [e for e in events if e["method"] == "Runtime.consoleAPICalled"
                 and e["params"]["type"] in ("error", "assert")]
    problems += [e for e in events if e["method"] == "Log.entryAdded"
                 and e["params"]["entry"]["level"] == "error"]
    assert not problems, problems
    fetched = {e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"}
    assert url in fetched
    assert not {u for u in fetched if u != url and not u.startswith("data:")}, fetched
    assert rows == 3
    assert scripts == 0
    assert len(images) == 9 and all(done and width > 0 for done, width in images), images

    png = tmp_path / "report.png"
    png.write_bytes(shot)
    from PIL import Image

    with Image.open(png) as im:
        assert im.size == (1200, 1600)
        assert len(im.convert("RGB").getcolors(1 << 20) or ()) > 50  # text, tables, figures: not blank


def test_a_recording_in_many_items_keeps_the_page_small() -> None:
    # 300 items with three matches each. Figures are bounded per recording (70 recordings x 150 kB is
    # 10 MB); table rows grow with the scan's matches, about 1 kB per item with its matches.
    records = [_record(f"/data/many/{i:04d}.mp3", "match",
                       [_match("T001", q, q + 8.0, (7 * i + q) % 170, (7 * i + q) % 170 + 8.0, 6.0 + i % 40)
                        for q in (0.0, 20.0, 40.0)], duration=60.0 + i % 120)
               for i in range(300)]
    html = render_html(findings=_findings(records), records=records, manifest={}, methods={})
    figures = sum(len(a["src"]) for a in _Page(html).all("img"))
    assert figures < 150_000
    assert len(html) - figures < 300 * 1_500
    assert "The 260 items after #40 are in the table below only." in html
