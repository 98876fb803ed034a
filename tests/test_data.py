import gzip
import hashlib
import http.server
import shutil
import threading
from functools import partial

import numpy as np
import pytest

from aekit.store import data as D
from aekit import load, read_array, read_idx


def test_digits_default(digits):
    assert digits.train.x.dtype == np.float32 and digits.train.x.shape[1] == 64
    assert len(digits.train) + len(digits.test) == 1797
    assert digits.train.x.min() >= 0 and digits.train.x.max() == 1.0
    assert digits.train.shape == (1, 8, 8) and digits.train.y is not None
    again = load("digits")
    assert np.array_equal(digits.test.x, again.test.x)  # seeded split


def test_mnist_from_directory(mnist_dir):
    s = load("mnist", data_dir=mnist_dir)
    assert s.train.x.shape == (60000, 784) and s.test.x.shape == (10000, 784)
    assert s.train.shape == (1, 28, 28)
    assert s.train.x.min() == 0 and s.train.x.max() == 1
    assert np.bincount(s.test.y).tolist()[:2] == [980, 1135]
    # a directory path works the same
    assert np.array_equal(load(str(mnist_dir)).test.x, s.test.x)


def _write_idx(path, header: bytes, body: bytes):
    with gzip.open(path, "wb") as f:
        f.write(header + body)


def test_idx_bad_header_and_checksum(tmp_path):
    bad = tmp_path / "bad-idx3-ubyte.gz"
    _write_idx(bad, b"\x00\x00\x0d\x03" + (2).to_bytes(4, "big") * 3, bytes(8))
    with pytest.raises(ValueError, match="bad IDX header"):
        read_idx(bad)
    short = tmp_path / "short-idx1-ubyte.gz"
    _write_idx(short, b"\x00\x00\x08\x01" + (10).to_bytes(4, "big"), bytes(3))
    with pytest.raises(ValueError, match=r"header says shape \[10\]"):
        read_idx(short)
    good = tmp_path / "good-idx1-ubyte.gz"
    _write_idx(good, b"\x00\x00\x08\x01" + (3).to_bytes(4, "big"), bytes([1, 2, 3]))
    assert read_idx(good).tolist() == [1, 2, 3]
    raw = bytearray(good.read_bytes())
    raw[-8] ^= 0xFF  # the gzip CRC32 no longer matches
    good.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="corrupted"):
        read_idx(good)


def test_idx_directory_missing_file(tmp_path, mnist_dir):
    for f in mnist_dir.iterdir():
        if "labels" not in f.name:
            shutil.copy(f, tmp_path)
    with pytest.raises(ValueError, match="missing file train-labels-idx1-ubyte.gz"):
        load("mnist", data_dir=tmp_path)
    with pytest.raises(ValueError, match="data directory not found"):
        load("mnist", data_dir=tmp_path / "nope")


class _Server:
    """A local HTTP server over a directory, counting requests."""

    def __init__(self, root):
        self.hits = []
        hits = self.hits

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *a):
                hits.append(self.path)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(mnist_dir, tmp_path):
    root = tmp_path / "mirror"
    shutil.copytree(mnist_dir, root)
    s = _Server(root)
    yield s
    s.close()


def test_download_rejects_checksum_mismatch(server, tmp_path):
    # the shared training images are not the canonical file: the canonical md5 must reject them
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz.*checksum mismatch"):
        D.download("mnist", tmp_path / "cache", mirrors=[server.url])
    left = list((tmp_path / "cache" / "mnist").iterdir())
    assert not any(p.name.startswith("train-images") for p in left), left  # nothing unverified kept


def test_download_verifies_caches_and_falls_back(server, tmp_path, monkeypatch, mnist_dir):
    local = hashlib.md5((mnist_dir / "train-images-idx3-ubyte.gz").read_bytes()).hexdigest()
    monkeypatch.setitem(D.IDX_FILES["mnist"]["md5"], "train-images-idx3-ubyte.gz", local)
    monkeypatch.setitem(D.IDX_FILES["mnist"], "mirrors", [server.url + "missing/", server.url])
    monkeypatch.setenv("AEKIT_CACHE_DIR", str(tmp_path / "cache"))
    s = load("mnist")  # not cached: downloads through the second mirror after the first 404s
    assert s.train.x.shape == (60000, 784)
    assert sorted(p.name for p in (tmp_path / "cache" / "mnist").iterdir()) == sorted(D.IDX_FILES["mnist"]["md5"])
    n = len(server.hits)
    assert any("missing/" in h for h in server.hits)
    load("mnist")  # cached and verified: no new requests
    D.download("mnist")
    assert len(server.hits) == n


def test_unreachable_mirror(tmp_path):
    with pytest.raises(ValueError, match="could not download"):
        D.download("mnist", tmp_path, mirrors=["http://127.0.0.1:9/"])
    with pytest.raises(ValueError, match="no download for 'digits'"):
        D.download("digits", tmp_path)


def test_not_cached_without_download(tmp_path, monkeypatch):
    monkeypatch.setenv("AEKIT_CACHE_DIR", str(tmp_path))
    with pytest.raises(ValueError, match="not in the cache"):
        load("fashion-mnist", download_missing=False)


def test_user_files(tmp_path):
    x = np.random.rand(20, 5).astype(np.float32)
    np.save(tmp_path / "a.npy", x)
    np.savez(tmp_path / "b.npz", x=x, y=np.arange(20))
    np.savetxt(tmp_path / "c.csv", x, delimiter=",", header="a,b,c,d,e", comments="")
    for f in ("a.npy", "b.npz", "c.csv"):
        got, y, shape = read_array(tmp_path / f)
        np.testing.assert_allclose(got, x, rtol=1e-6)
        assert shape == (5,)
    assert read_array(tmp_path / "b.npz")[1].tolist() == list(range(20))
    s = load(str(tmp_path / "b.npz"))
    assert len(s.train) == 16 and len(s.test) == 4 and s.test.y is not None


def test_user_images_are_scaled_and_shaped(tmp_path):
    np.save(tmp_path / "img.npy", np.full((4, 6, 6), 255, dtype=np.uint8))
    x, _, shape = read_array(tmp_path / "img.npy")
    assert shape == (1, 6, 6) and x.shape == (4, 36) and x.max() == 1.0


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("bad.csv", "1,2,3\n4,x,6\n", r"non-numeric value 'x' on line 2"),
        ("ragged.csv", "1,2,3\n4,5\n", "different numbers of columns"),
        ("empty.csv", "", "is empty"),
        ("head.csv", "a,b\n", "header but no data"),
        ("nan.csv", "1,2\nnan,3\n", "NaN or inf in 1 sample"),
        ("data.txt", "1,2\n", "unsupported file type '.txt'"),
    ],
)
def test_bad_user_files(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(ValueError, match=message):
        read_array(tmp_path / name)


def test_bad_arrays(tmp_path):
    np.save(tmp_path / "one.npy", np.zeros(5))
    with pytest.raises(ValueError, match=r"shape \(samples, features\)"):
        read_array(tmp_path / "one.npy")
    np.save(tmp_path / "empty.npy", np.zeros((0, 3)))
    with pytest.raises(ValueError, match="empty"):
        read_array(tmp_path / "empty.npy")
    (tmp_path / "junk.npy").write_bytes(b"not an array")
    with pytest.raises(ValueError, match="cannot read"):
        read_array(tmp_path / "junk.npy")
    with pytest.raises(ValueError, match="file not found"):
        read_array(tmp_path / "missing.npy")
    with pytest.raises(ValueError, match="unknown data 'nothing'"):
        load("nothing")


def test_a_slow_mirror_hits_the_deadline(tmp_path):
    """Issue 20.5: one byte every so often kept a download alive forever (the socket timeout restarts)."""
    import time as _time

    class Trickle(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            try:
                for _ in range(1000):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    _time.sleep(0.2)
            except OSError:
                pass

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        t = _time.monotonic()
        with pytest.raises(ValueError, match="longer than its deadline of 1 s"):
            D.download("mnist", tmp_path, mirrors=[f"http://127.0.0.1:{httpd.server_address[1]}/"], deadline=1.0)
        assert _time.monotonic() - t < 10
        assert not list((tmp_path / "mnist").iterdir())  # nothing partial kept
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_complex_data_is_refused(tmp_path):
    np.save(tmp_path / "c.npy", np.ones((4, 3), dtype=np.complex64))
    with pytest.raises(ValueError, match="is complex"):
        read_array(tmp_path / "c.npy")
