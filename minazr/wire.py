"""The weight wire: versioned model weights from the learner to every rollout engine, over ZMQ, without pickle.

    server = WeightServer(host)                 # learner side: a ROUTER socket and a serving thread
    server.publish(model.named_parameters(), version=3, dtype=torch.bfloat16)
    for name, tensor in fetch_weights(server.address, version=3):   # engine side (inside the vLLM worker)
        ...

A published version is cut into buckets of at most `bucket_mb` MiB of raw tensor bytes. A client sends
{"version": v} (or {"version": null} for whatever is newest) and receives one two-frame message per bucket: a JSON header (version, bucket index, bucket count,
and for each tensor its name, dtype, shape, byte offset, byte length) and the raw bytes. Nothing is unpickled; a
client asking for a version the server no longer holds gets {"error": ...}. Clients pull, so a restarted engine can
fetch the current weights whenever it comes up.
"""

import json
import os
import threading
import time
from collections.abc import Iterable, Iterator

import torch
import zmq

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}


class WireError(RuntimeError):
    """The weight wire failed: timeout, unknown version, malformed message."""


def pack(named_tensors: Iterable[tuple[str, torch.Tensor]], version: int, dtype: torch.dtype,
         bucket_mb: float) -> list[tuple[bytes, torch.Tensor]]:
    """Cast and copy tensors into buckets: [(header JSON, uint8 payload tensor)]."""
    limit = max(1, int(bucket_mb * 2**20))
    groups: list[list[tuple[str, torch.Tensor]]] = [[]]
    size = 0
    itemsize = torch.empty(0, dtype=dtype).element_size()
    for name, t in named_tensors:
        nbytes = t.numel() * itemsize
        if size and size + nbytes > limit:
            groups.append([])
            size = 0
        groups[-1].append((name, t))
        size += nbytes
    out = []
    for i, group in enumerate(groups):
        payload = torch.empty(sum(t.numel() for _, t in group) * itemsize, dtype=torch.uint8)
        metas, offset = [], 0
        for name, t in group:
            nbytes = t.numel() * itemsize
            # cast while copying, straight into the bucket: no intermediate tensors
            payload[offset:offset + nbytes].view(dtype).view(t.shape).copy_(t.detach())
            metas.append({"name": name, "dtype": DTYPE_NAMES[dtype], "shape": list(t.shape), "offset": offset,
                          "nbytes": nbytes})
            offset += nbytes
        header = {"version": version, "bucket": i, "n_buckets": len(groups), "tensors": metas}
        out.append((json.dumps(header).encode(), payload))
    return out


def unpack(header: dict, payload: memoryview) -> list[tuple[str, torch.Tensor]]:
    """Tensors of one bucket, as views into `payload` (no copy)."""
    data = torch.frombuffer(payload, dtype=torch.uint8) if len(payload) else torch.empty(0, dtype=torch.uint8)
    out = []
    for m in header["tensors"]:
        if m["dtype"] not in DTYPES or m["offset"] + m["nbytes"] > len(data):
            raise WireError(f"malformed tensor entry {m.get('name')!r}")
        t = data[m["offset"]:m["offset"] + m["nbytes"]].view(DTYPES[m["dtype"]]).reshape(m["shape"])
        out.append((m["name"], t))
    return out


class WeightServer:
    """Learner side: holds the latest published version and serves it to any number of clients."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None):
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.ROUTER)
        self._sock.setsockopt(zmq.LINGER, 0)
        if port:
            try:
                self._sock.bind(f"tcp://{host}:{port}")
            except zmq.ZMQError as e:
                self._sock.close()
                self._ctx.term()
                raise OSError(f"weight server cannot bind {host}:{port}: {os.strerror(e.errno)} "
                              f"(learner.weight_port)") from None
        else:
            port = self._sock.bind_to_random_port(f"tcp://{host}")
        self.address = f"tcp://{host}:{port}"
        self._buckets: list[tuple[bytes, torch.Tensor]] = []
        self.version = -1
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="weight-server", daemon=True)
        self._thread.start()

    def publish(self, named_tensors, version: int, dtype: torch.dtype = torch.bfloat16,
                bucket_mb: float = 64.0) -> dict:
        """Pack and make `version` the one served; returns timing and size."""
        t0 = time.perf_counter()
        buckets = pack(named_tensors, version, dtype, bucket_mb)
        with self._lock:
            self._buckets, self.version = buckets, version
        return {"serialize_s": time.perf_counter() - t0, "bytes": sum(p.numel() for _, p in buckets),
                "buckets": len(buckets)}

    def _serve(self) -> None:
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(100):
                continue
            frames = self._sock.recv_multipart()
            ident, body = frames[0], frames[-1]
            try:
                want = json.loads(body)["version"]
            except (ValueError, KeyError, TypeError):
                self._sock.send_multipart([ident, json.dumps({"error": "malformed request"}).encode(), b""])
                continue
            with self._lock:
                buckets, version = self._buckets, self.version
            if want is not None and want != version:
                msg = {"error": f"version {want} not available (serving {version})"}
                self._sock.send_multipart([ident, json.dumps(msg).encode(), b""])
                continue
            for header, payload in buckets:
                self._sock.send_multipart([ident, header, memoryview(payload.numpy())], copy=False)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close(0)
        self._ctx.term()


def fetch_weights(address: str, version: int | None, timeout_s: float = 60.0,
                  stats: dict | None = None) -> Iterator[tuple[str, torch.Tensor]]:
    """Engine side: request `version` (None: the newest) and yield (name, tensor) bucket by bucket, as the buckets
    arrive. `stats` receives the version actually received, bytes and seconds."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, int(timeout_s * 1000))
    sock.connect(address)
    t0 = time.perf_counter()
    received, received_version = 0, None
    try:
        sock.send(json.dumps({"version": version}).encode())
        expected, seen = None, 0
        while expected is None or seen < expected:
            try:
                header_frame, payload = sock.recv_multipart(copy=False)
            except zmq.Again:
                raise WireError(f"no weights from {address} within {timeout_s:g}s") from None
            header = json.loads(header_frame.bytes)
            if "error" in header:
                raise WireError(f"weight server at {address}: {header['error']}")
            if version is not None and header.get("version") != version:
                raise WireError(f"got version {header.get('version')} while fetching {version}")
            if expected is not None and header.get("version") != received_version:
                raise WireError("the served version changed during a fetch")
            received_version = header.get("version")
            expected = header["n_buckets"]
            seen += 1
            received += len(payload.buffer)
            yield from unpack(header, payload.buffer)
    finally:
        sock.close(0)
        if stats is not None:
            stats.update({"transfer_s": time.perf_counter() - t0, "bytes": received, "version": received_version})
