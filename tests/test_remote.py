"""Remote sources through fsspec: shards, zips and tables over HTTP (a server on 127.0.0.1) and on S3
(moto's server on 127.0.0.1) give exactly the records of the same files scanned locally."""

from __future__ import annotations

import functools
import http.server
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sourcekit import scan_records, webdataset_members, write_tar, write_zip

from earmark.scan.run import read_report, scan


# ------------------------------------------------------------------------------------------ corpus
@pytest.fixture(scope="module")
def corpus(clips, tmp_path_factory) -> Path:
    """Two shards, a zip, a Hugging Face Parquet file, a loose MP3 and a dataset card."""
    root = tmp_path_factory.mktemp("remote-corpus")
    c = list(clips.values())
    write_tar(root / "shard-000000.tar", webdataset_members(c[:3]))
    write_tar(root / "shard-000001.tar", webdataset_members(c[3:6]))
    write_tar(root / "shard-000002.tar", webdataset_members(c[6:]))
    write_zip(root / "extra.zip",
              [("a/pos5.mp3", clips["pos5.mp3"].data), ("b.mp3", clips["neg_noise.mp3"].data)])
    audio = pa.array([{"bytes": x.data, "path": x.name} for x in c[:3]],
                     type=pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
    pq.write_table(pa.table({"audio": audio}), root / "train-00000-of-00001.parquet")
    (root / "loose.mp3").write_bytes(clips["pos6.mp3"].data)
    (root / "README.md").write_text("card")
    return root


@pytest.fixture(scope="module")
def local_scans(corpus, library, tmp_path_factory):
    """Records of each corpus file (and of the whole folder) scanned locally, by source name."""
    out = tmp_path_factory.mktemp("remote-local")
    scans = {"folder": scan_records(corpus, library.catalogue, out / "folder")}
    for p in sorted(corpus.iterdir()):
        if p.suffix != ".md":
            scans[p.name] = scan_records(p, library.catalogue, out / p.name)
    assert sum(r["status"] == "match" for r in scans["folder"].values()) == 11  # 6 + 1 + 3 + 1
    return scans


# ---------------------------------------------------------------------------------------------- HTTP
FILES = ["shard-000000.tar", "extra.zip", "train-00000-of-00001.parquet", "loose.mp3"]

class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


class _RangeHandler(_QuietHandler):
    """A static file server that honours single byte ranges, as object stores and CDNs do."""

    def send_head(self):
        rng = self.headers.get("Range")
        if not rng:
            return super().send_head()
        try:
            f = open(self.translate_path(self.path), "rb")
        except OSError:
            self.send_error(404)
            return None
        with f:
            size = os.fstat(f.fileno()).st_size
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
            if not m or not (m.group(1) or m.group(2)):
                self.send_error(400)
                return None
            if m.group(1):
                start = int(m.group(1))
                end = min(int(m.group(2)) if m.group(2) else size - 1, size - 1)
            else:
                start, end = max(0, size - int(m.group(2))), size - 1
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            f.seek(start)
            body = f.read(end - start + 1)
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        return io.BytesIO(body)


def _serve(directory: Path, handler):
    bound = functools.partial(handler, directory=str(directory))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), bound)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    return srv, thread


@pytest.fixture(scope="module")
def http_base(corpus):
    pytest.importorskip("aiohttp", reason="fsspec's HTTP filesystem needs aiohttp (pip install aiohttp)")
    srv, thread = _serve(corpus, _RangeHandler)
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=10)


@pytest.mark.parametrize("name", FILES)
def test_http_source_equals_the_local_file(http_base, local_scans, library, tmp_path, name):
    url = f"{http_base}/{name}"
    records = scan_records(url, library.catalogue, tmp_path / "out")
    assert records == local_scans[name]
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["source"] == url


def test_http_brace_pattern_of_shards(http_base, local_scans, library, tmp_path):
    records = scan_records(f"{http_base}/shard-{{000000..000001}}.tar", library.catalogue, tmp_path / "out")
    expected = {**local_scans["shard-000000.tar"], **local_scans["shard-000001.tar"]}
    assert records == expected and len(records) == 6
    assert {r["source_path"] for r in records.values()} == {f"originals/pos{k}.mp3" for k in range(1, 7)}


def test_http_missing_files_are_error_records(http_base, local_scans, library, tmp_path):
    records = scan_records(f"{http_base}/shard-{{000001..000003}}.tar", library.catalogue, tmp_path / "out")
    for shard in ("shard-000001.tar", "shard-000002.tar"):
        assert {k: v for k, v in records.items() if k.startswith(shard)} == local_scans[shard]
    (missing,) = [r for k, r in records.items() if k.startswith("shard-000003.tar")]
    assert missing["status"] == "error" and missing["error_kind"] == "corrupt_container"
    (rec,) = scan_records(f"{http_base}/nope.mp3", library.catalogue, tmp_path / "out2").values()
    assert rec["file"] == "nope.mp3" and rec["status"] == "error" and rec["error_kind"] == "io"
    assert "cannot read" in rec["error"]


def test_http_resume_of_a_remote_shard(http_base, local_scans, library, tmp_path):
    url = f"{http_base}/shard-000000.tar"
    out = tmp_path / "out"
    scan(url, library.catalogue, out, workers=1)
    lines = (out / "results.jsonl").read_text().splitlines(keepends=True)
    (out / "results.jsonl").write_text("".join(lines[:1]) + lines[1][:30])
    seen = []
    summary = scan(url, library.catalogue, out, workers=1, resume=True,
                   on_result=lambda r: seen.append(r.file))
    assert summary.resumed_items == 1 and len(seen) == 2
    assert {r["file"]: r for r in read_report(out)} == local_scans["shard-000000.tar"]


def test_plain_http_server_without_ranges(corpus, local_scans, library, tmp_path):
    """Python's http.server ignores Range: a small shard still streams; a zip (read from its end)
    cannot be read, and that is an error record, not a crash."""
    pytest.importorskip("aiohttp", reason="fsspec's HTTP filesystem needs aiohttp (pip install aiohttp)")
    srv, thread = _serve(corpus, _QuietHandler)
    try:
        base = f"http://127.0.0.1:{srv.server_address[1]}"
        records = scan_records(f"{base}/shard-000000.tar", library.catalogue, tmp_path / "a")
        assert records == local_scans["shard-000000.tar"]
        (rec,) = scan_records(f"{base}/extra.zip", library.catalogue, tmp_path / "b").values()
        assert rec["file"] == "extra.zip" and rec["status"] == "error"
        assert rec["error_kind"] == "corrupt_container" and "unreadable zip archive" in rec["error"]
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=10)


# ------------------------------------------------------------------------------------------------ S3
BUCKET = "earmark-test"


@pytest.fixture(scope="module")
def s3_endpoint(corpus):
    """moto's S3 server on 127.0.0.1 holding the corpus under ``corpus/`` (and one shard under ``one/``)."""
    pytest.importorskip("s3fs", reason="s3:// sources need s3fs (pip install s3fs)")
    pytest.importorskip("boto3", reason="the S3 tests upload with boto3 (pip install boto3)")
    moto_server = pytest.importorskip(
        "moto.server", reason="the S3 tests need moto's server (pip install 'moto[server]')")
    import boto3
    import s3fs

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        creds = dict(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
        client = boto3.client("s3", endpoint_url=endpoint, **creds)
        client.create_bucket(Bucket=BUCKET)
        for p in sorted(corpus.iterdir()):
            client.upload_file(str(p), BUCKET, f"corpus/{p.name}")
        client.upload_file(str(corpus / "shard-000001.tar"), BUCKET, "one/shard-000001.tar")
        s3fs.S3FileSystem.clear_instance_cache()
        yield endpoint
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
        server.stop()


@pytest.fixture
def s3_env(s3_endpoint, monkeypatch, tmp_path):
    """Credentials and the endpoint as environment variables (botocore reads AWS_ENDPOINT_URL_S3)."""
    import s3fs

    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": s3_endpoint,
                 "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
                 "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials")}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    s3fs.S3FileSystem.clear_instance_cache()
    yield s3_endpoint
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.mark.parametrize("name", FILES)
def test_s3_object_equals_the_local_file(s3_env, local_scans, library, tmp_path, name):
    records = scan_records(f"s3://{BUCKET}/corpus/{name}", library.catalogue, tmp_path / "out")
    assert records == local_scans[name]


def test_s3_prefix_brace_pattern_and_glob(s3_env, local_scans, library, tmp_path):
    folder = scan_records(f"s3://{BUCKET}/corpus/", library.catalogue, tmp_path / "folder")
    assert folder == local_scans["folder"]
    assert json.loads((tmp_path / "folder" / "summary.json").read_text())["skipped_files"] == 1
    pattern = f"s3://{BUCKET}/corpus/shard-{{000001..000002}}.tar"
    braces = scan_records(pattern, library.catalogue, tmp_path / "b")
    assert braces == {**local_scans["shard-000001.tar"], **local_scans["shard-000002.tar"]}
    globbed = scan_records(f"s3://{BUCKET}/corpus/shard-*.tar", library.catalogue, tmp_path / "g")
    assert globbed == {k: v for k, v in local_scans["folder"].items() if k.startswith("shard-")}
    one = scan_records(f"s3://{BUCKET}/one", library.catalogue, tmp_path / "one")
    assert one == local_scans["shard-000001.tar"]


def test_s3_missing_prefix_is_refused(s3_env, library, tmp_path):
    from earmark.errors import ScanError

    with pytest.raises(ScanError, match="no such file or folder"):
        scan(f"s3://{BUCKET}/nothing-here/", library.catalogue, tmp_path / "out", workers=1)
    assert not (tmp_path / "out").exists()


def test_s3_through_the_cli_with_fsspec_endpoint_config(s3_endpoint, local_scans, library, tmp_path):
    """The console script, the endpoint given as fsspec's FSSPEC_S3_ENDPOINT_URL (read when fsspec is
    imported), two worker processes."""
    exe = Path(sys.executable).parent / "earmark"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "earmark.cli.main"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
               AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
               FSSPEC_S3_ENDPOINT_URL=s3_endpoint)
    out = tmp_path / "out"
    proc = subprocess.run([*cmd, "scan", f"s3://{BUCKET}/corpus/shard-{{000000..000001}}.tar", "-c",
                           str(library.catalogue), "-o", str(out), "-j", "2"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert {r["file"]: r for r in read_report(out)} == {**local_scans["shard-000000.tar"],
                                                       **local_scans["shard-000001.tar"]}
    shutil.rmtree(out)


# --------------------------------------------------------------------------------------------- HTTPS
def _self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by itself, and its key (PEM files)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_https_shard_through_the_cli(corpus, local_scans, library, tmp_path):
    """A WebDataset shard read over https:// from a TLS server on loopback, trusted via SSL_CERT_FILE."""
    import ssl

    pytest.importorskip("aiohttp", reason="fsspec's HTTP filesystem needs aiohttp (pip install aiohttp)")
    cert, key = _self_signed(tmp_path)
    bound = functools.partial(_RangeHandler, directory=str(corpus))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), bound)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"https://127.0.0.1:{srv.server_address[1]}/shard-000000.tar"
        env = dict(os.environ, SSL_CERT_FILE=str(cert))
        out = tmp_path / "out"
        cmd = [sys.executable, "-m", "earmark.cli.main", "scan", url, "-c", str(library.catalogue), "-j", "1"]
        r = subprocess.run([*cmd, "-o", str(out)], capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 1, r.stderr  # found catalogue recordings
        records = {x["file"]: x for x in read_report(out)}
        assert records == local_scans["shard-000000.tar"]
        # without trusting the certificate the shard is an error line, not a silent success
        out2 = tmp_path / "untrusted"
        r2 = subprocess.run([sys.executable, "-m", "earmark.cli.main", "scan", url, "-c",
                             str(library.catalogue), "-o", str(out2), "-j", "1"],
                            capture_output=True, text=True, env={k: v for k, v in env.items()
                                                                 if k != "SSL_CERT_FILE"}, timeout=120)
        assert r2.returncode in (0, 2), r2.stderr
        if r2.returncode == 0:
            assert all(x["status"] == "error" for x in read_report(out2))
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=10)
