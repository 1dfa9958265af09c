"""The weight wire over real ZMQ sockets: the network path, the same-machine shared-memory path, and their failures.

- a client on the same machine reads the published file in place; one that says nothing of its machine (another
  node) gets the bytes over the socket; both get exactly the published tensors, cast to the wire dtype;
- a client that cannot open the file (another container) falls back to the socket by itself;
- a reader that falls a whole publish behind, so that its file is reused under it, fails loudly (never loads half of
  one version and half of another);
- an old version is refused; directories left by a killed learner are removed; close() leaves nothing behind.
"""

import os

import pytest
import torch

from minazr.contracts.wire import WeightServer, WireError, fetch_weights


def tensors(seed: int) -> list[tuple[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [("embed.weight", torch.randn(300, 64, generator=g)), ("layer.0.bias", torch.randn(64, generator=g)),
            ("head.weight", torch.randn(64, 300, generator=g))]


def fetch(server, version, shm=True):
    stats: dict = {}
    got = {name: t.clone() for name, t in fetch_weights(server.address, version, 10.0, stats, shm=shm)}
    return got, stats


@pytest.fixture
def server(tmp_path):
    s = WeightServer("127.0.0.1", shm_dir=str(tmp_path))
    yield s
    s.close()


@pytest.mark.parametrize("shm", [True, False])
def test_both_paths_deliver_the_published_tensors(server, shm):
    for version in (1, 2, 3):  # the third publish reuses the first one's file
        server.publish(tensors(version), version, torch.bfloat16, bucket_mb=0.05)
        got, stats = fetch(server, version if version != 2 else None, shm=shm)
        assert stats["path"] == ("shm" if shm else "tcp") and stats["version"] == version
        want = dict(tensors(version))
        assert got.keys() == want.keys()
        for name, t in want.items():
            assert got[name].dtype == torch.bfloat16 and torch.equal(got[name], t.to(torch.bfloat16)), name


def test_a_client_that_cannot_open_the_file_gets_the_bytes(server):
    server.publish(tensors(1), 1, torch.float32)
    for f in server._shm.dir.iterdir():  # as seen from another container: no such file
        os.unlink(f)
    got, stats = fetch(server, 1)
    assert stats["path"] == "tcp" and torch.equal(got["head.weight"], dict(tensors(1))["head.weight"])


def test_a_reader_a_whole_publish_behind_fails_instead_of_mixing_versions(server):
    server.publish(tensors(1), 1, torch.float32, bucket_mb=0.05)
    reader = fetch_weights(server.address, 1, 10.0)
    next(reader)  # mid-read of version 1 ...
    server.publish(tensors(2), 2, torch.float32, bucket_mb=0.05)
    server.publish(tensors(3), 3, torch.float32, bucket_mb=0.05)  # ... its file now holds version 3
    with pytest.raises(WireError, match="replaced while being read"):
        list(reader)


def test_an_old_version_is_refused(server):
    server.publish(tensors(1), 1, torch.float32)
    server.publish(tensors(2), 2, torch.float32)
    for shm in (True, False):
        with pytest.raises(WireError, match="version 1 not available"):
            fetch(server, 1, shm=shm)


def test_stale_directories_are_removed_and_close_cleans_up(tmp_path):
    stale = tmp_path / "minazr-weights-999999999-deadbeef"
    stale.mkdir()
    (stale / "v3.bin").write_bytes(b"x" * 10)
    s = WeightServer("127.0.0.1", shm_dir=str(tmp_path))
    assert not stale.exists()
    s.publish(tensors(1), 1, torch.float32)
    assert list(s._shm.dir.iterdir())
    s.close()
    assert list(tmp_path.iterdir()) == []
