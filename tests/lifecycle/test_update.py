"""The update client against a real HTTP server on 127.0.0.1, including cut connections."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from lifecycle_models import SAMPLE, affine_onnx, expected

from edgeai.errors import ExpiredError, IntegrityError, RollbackError, SizeLimitError
from edgeai.lifecycle import ModelStore, UpdateClient, create_bundle, download


class BundleServer:
    """Serves bytes by path with Range support; can cut, lie about or never end a response."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut_first: set[str] = set()  # first response sends half then drops the connection
        self.cut_always: set[str] = set()  # every response sends half then drops the connection
        self.endless: set[str] = set()  # no Content-Length, streams until the client stops
        self.ranges: list[str | None] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path
                server.ranges.append(self.headers.get("Range"))
                if path in server.endless:
                    self.send_response(200)
                    self.end_headers()
                    for _ in range(2_000):  # bounded: 128 MiB at most
                        try:
                            self.wfile.write(b"\0" * 65536)
                        except OSError:
                            return
                    return
                data = server.files.get(path)
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng:
                    start = int(rng.split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if path in server.cut_first or path in server.cut_always:
                    server.cut_first.discard(path)
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)  # cut mid-download
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[BundleServer]:
    srv = BundleServer()
    yield srv
    srv.close()


@pytest.fixture
def store(tmp_path: Path, bundles: dict[str, Path]) -> ModelStore:
    s = ModelStore(tmp_path / "store", trusted_keys=[bundles["pub"]], target="test-cpu")
    s.install(bundles["1.0.0"], activate=True)
    return s


def run_active(store: ModelStore) -> np.ndarray:
    with store.open_session() as sess:
        return sess.run({"x": SAMPLE})["y"]  # type: ignore[no-any-return]


def test_update_over_http_activates_after_smoke_test(server, store, bundles) -> None:  # type: ignore[no-untyped-def]
    server.files["/affine-1.1.0.eai"] = bundles["1.1.0"].read_bytes()
    result = UpdateClient(store).update(f"{server.url}/affine-1.1.0.eai")
    assert (result.status, result.version, result.previous) == ("activated", "1.1.0", "1.0.0")
    np.testing.assert_allclose(run_active(store), expected("1.1.0"), rtol=1e-6)
    again = UpdateClient(store).update(f"{server.url}/affine-1.1.0.eai")
    assert again.status == "current"


def test_cut_connection_resumes_with_range(server, store, bundles) -> None:  # type: ignore[no-untyped-def]
    data = bundles["2.0.0"].read_bytes()
    server.files["/b.eai"] = data
    server.cut_first.add("/b.eai")
    result = UpdateClient(store, retries=3).update(f"{server.url}/b.eai")
    assert result.status == "activated"
    assert server.ranges[0] is None
    resumed = server.ranges[1]
    assert resumed is not None and resumed.startswith("bytes=")
    assert 0 < int(resumed[6:-1]) < len(data)  # resumed from where the cut left it
    np.testing.assert_allclose(run_active(store), expected("2.0.0"), rtol=1e-6)


def test_download_resumes_after_the_process_gave_up(server, store, bundles) -> None:  # type: ignore[no-untyped-def]
    from edgeai.lifecycle.update import DownloadError

    data = bundles["2.0.0"].read_bytes()
    server.files["/b.eai"] = data
    server.cut_always.add("/b.eai")
    with pytest.raises(DownloadError, match="2 attempts"):
        UpdateClient(store, retries=1).update(f"{server.url}/b.eai")
    parts = list((store.root / "downloads").glob("*.part"))
    assert len(parts) == 1
    partial = parts[0].stat().st_size
    assert 0 < partial < len(data)
    assert store.active == "1.0.0"
    server.cut_always.clear()
    # a new client (as after a reboot) picks up the partial file
    result = UpdateClient(ModelStore(store.root, trusted_keys=[bundles["pub"]])).update(f"{server.url}/b.eai")
    assert result.status == "activated"
    assert server.ranges[-1] == f"bytes={partial}-"  # resumed, not restarted
    assert list((store.root / "downloads").iterdir()) == []
    np.testing.assert_allclose(run_active(store), expected("2.0.0"), rtol=1e-6)


def test_download_size_limit_from_header_and_from_stream(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server.files["/big"] = b"x" * 100_000
    with pytest.raises(SizeLimitError, match="100,000 bytes"):
        download(f"{server.url}/big", tmp_path / "big", max_bytes=50_000)
    server.endless.add("/endless")
    with pytest.raises(SizeLimitError, match="more than the limit"):
        download(f"{server.url}/endless", tmp_path / "endless", max_bytes=1_000_000)
    assert not (tmp_path / "endless.part").exists()
    assert not (tmp_path / "endless").exists()


def test_local_path_update_and_failed_smoke_test_keeps_old(store, bundles, signer, tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.eai"
    bad.write_bytes(
        create_bundle(
            affine_onnx(7.0),
            name="affine",
            version="3.0.0",
            target="test-cpu",
            signing_key=signer,
            sample_inputs={"x": SAMPLE},
            expected_outputs={"y": expected("1.0.0").astype(np.float32)},  # not what this model computes
        )
    )
    result = UpdateClient(store).update(bad)
    assert result.status == "rejected"
    assert "differs from the expected" in result.reason
    assert store.active == "1.0.0"
    assert "3.0.0" not in {v.version for v in store.list()}
    np.testing.assert_allclose(run_active(store), expected("1.0.0"), rtol=1e-6)
    no_smoke = tmp_path / "nosmoke.eai"
    no_smoke.write_bytes(
        create_bundle(affine_onnx(7.0), name="affine", version="3.0.1", target="test-cpu", signing_key=signer)
    )
    assert UpdateClient(store).update(no_smoke).status == "rejected"
    assert UpdateClient(store, require_smoke_test=False).update(no_smoke).status == "activated"


def test_security_failures_over_http_raise_and_keep_old(server, store, bundles, signer) -> None:  # type: ignore[no-untyped-def]
    from datetime import datetime, timedelta, timezone

    store.install(bundles["1.1.0"], activate=True)
    server.files["/old.eai"] = bundles["1.0.0"].read_bytes()
    with pytest.raises(RollbackError):
        UpdateClient(store).update(f"{server.url}/old.eai")
    tampered = bytearray(bundles["2.0.0"].read_bytes())
    tampered[-10] ^= 0xFF
    server.files["/tampered.eai"] = bytes(tampered)
    with pytest.raises(IntegrityError):
        UpdateClient(store).update(f"{server.url}/tampered.eai")
    server.files["/expired.eai"] = create_bundle(
        affine_onnx(4.0),
        name="affine",
        version="2.0.0",
        target="test-cpu",
        signing_key=signer,
        expires=datetime.now(timezone.utc) - timedelta(minutes=1),
    )
    with pytest.raises(ExpiredError):
        UpdateClient(store).update(f"{server.url}/expired.eai")
    assert store.active == "1.1.0"
    assert list((store.root / "downloads").iterdir()) == []


def test_encrypted_update_needs_the_key_for_its_smoke_test(store, signer, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from edgeai.security import generate_encryption_key

    for env in ("EDGEAI_BUNDLE_KEY", "EDGEAI_BUNDLE_KEY_FILE"):
        monkeypatch.delenv(env, raising=False)
    key = generate_encryption_key()
    path = tmp_path / "enc.eai"
    path.write_bytes(
        create_bundle(
            affine_onnx(4.0),
            name="affine",
            version="2.0.0",
            target="test-cpu",
            signing_key=signer,
            encryption_key=key,
            sample_inputs={"x": SAMPLE},
        )
    )
    rejected = UpdateClient(store).update(path)
    assert rejected.status == "rejected" and "DecryptionError" in rejected.reason
    assert store.active == "1.0.0"
    assert UpdateClient(store, key=key).update(path).status == "activated"
    with store.open_session(key=key) as sess:
        np.testing.assert_allclose(sess.run({"x": SAMPLE})["y"], expected("2.0.0"), rtol=1e-6)
