"""The weight wire: versioned model weights from the learner to every rollout engine, over ZMQ, without pickle.

    server = WeightServer(host)                 # learner side: a ROUTER socket and a serving thread
    server.publish(model.named_parameters(), version=3, dtype=torch.bfloat16)
    for name, tensor in fetch_weights(server.address, version=3):   # engine side (inside the vLLM worker)
        ...

A published version is cut into buckets of at most `bucket_mb` MiB of raw tensor bytes. A client sends
{"version": v} (or {"version": null} for whatever is newest) and receives one two-frame message per bucket: a JSON
header (version, bucket index, bucket count, and for each tensor its name, dtype, shape, byte offset, byte length)
and the raw bytes. Nothing is unpickled; a client asking for a version the server no longer holds gets
{"error": ...}. Clients pull, so a restarted engine can fetch the current weights whenever it comes up.

Same machine, no copy: with `shm_dir` (default /dev/shm) the server packs each version straight into a file there
(one per version; the newest two are kept, so a reader never sees a half-written one). A client on the same machine
(its request carries this boot's id, /proc/sys/kernel/random/boot_id) gets one message listing the file and the
buckets' offsets in it, maps the file and reads the tensors in place; a client on another node, or one that cannot
open the file (another container), gets the bytes over the socket as before.
"""

import json
import mmap
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import torch
import zmq

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}


class WireError(RuntimeError):
    """The weight wire failed: timeout, unknown version, malformed message."""


def boot_id() -> str | None:
    """This machine's boot id: equal on both ends means they share /dev/shm (unless containers separate them)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def pack(named_tensors: Iterable[tuple[str, torch.Tensor]], version: int, dtype: torch.dtype,
         bucket_mb: float, alloc: Callable[[int], torch.Tensor] | None = None) -> list[tuple[bytes, torch.Tensor]]:
    """Cast and copy tensors into buckets: [(header JSON, uint8 payload tensor)]. The payloads are consecutive
    slices of one buffer, `alloc(total bytes)` (default: fresh memory)."""
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
    sizes = [sum(t.numel() for _, t in group) * itemsize for group in groups]
    buffer = (alloc or (lambda n: torch.empty(n, dtype=torch.uint8)))(sum(sizes))
    out, start = [], 0
    for i, group in enumerate(groups):
        payload = buffer[start:start + sizes[i]]
        start += sizes[i]
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

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, shm_dir: str | None = "/dev/shm"):
        self._shm = _ShmVersions(shm_dir) if shm_dir and os.access(shm_dir, os.W_OK) else None
        self._boot = boot_id()
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
        self._shm_manifest: bytes | None = None
        self.version = -1
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="weight-server", daemon=True)
        self._thread.start()

    def publish(self, named_tensors, version: int, dtype: torch.dtype = torch.bfloat16,
                bucket_mb: float = 64.0) -> dict:
        """Pack and make `version` the one served; returns timing and size."""
        t0 = time.perf_counter()
        alloc = self._shm.allocator(version) if self._shm else None
        buckets = pack(named_tensors, version, dtype, bucket_mb, alloc)
        shm = self._shm.commit(version, buckets) if self._shm else None
        with self._lock:
            self._buckets, self.version, self._shm_manifest = buckets, version, shm
        return {"serialize_s": time.perf_counter() - t0, "bytes": sum(p.numel() for _, p in buckets),
                "buckets": len(buckets), "shm": shm is not None}

    def _serve(self) -> None:
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(100):
                continue
            frames = self._sock.recv_multipart()
            ident, body = frames[0], frames[-1]
            try:
                request = json.loads(body)
                want, host = request["version"], request.get("host")
            except (ValueError, KeyError, TypeError, AttributeError):
                self._sock.send_multipart([ident, json.dumps({"error": "malformed request"}).encode(), b""])
                continue
            with self._lock:
                buckets, version, manifest = self._buckets, self.version, self._shm_manifest
            if want is not None and want != version:
                msg = {"error": f"version {want} not available (serving {version})"}
                self._sock.send_multipart([ident, json.dumps(msg).encode(), b""])
                continue
            if manifest is not None and host is not None and host == self._boot:
                self._sock.send_multipart([ident, manifest, b""])  # same machine: read the file in place
                continue
            for header, payload in buckets:
                self._sock.send_multipart([ident, header, memoryview(payload.numpy())], copy=False)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close(0)
        self._ctx.term()
        if self._shm is not None:
            self._shm.close()


class _ShmVersions:
    """Published versions as files in a private directory under shm_dir: v<version>.bin holds a stamp (the version,
    as 8 bytes, written last) and then the buckets back to back. The newest KEEP files are kept; the next publish
    reuses the oldest one's memory (renamed first, so nobody opens it by its old name; fresh tmpfs pages cost more
    than the copy itself). A reader checks the stamp before and after reading, so one that was a whole publish late
    fails loudly instead of loading half of another version."""

    KEEP = 2
    STAMP = 64  # bytes before the first bucket; the version sits in the first 8

    def __init__(self, shm_dir: str):
        root = Path(shm_dir)
        for stale in root.glob("minazr-weights-*"):  # left by a learner that was killed: its pid is gone
            pid = stale.name.split("-")[2]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                shutil.rmtree(stale, ignore_errors=True)
        self.dir = root / f"minazr-weights-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.dir.mkdir(mode=0o700)
        self.files: dict[int, mmap.mmap] = {}  # version -> its mapping, oldest first

    def allocator(self, version: int) -> Callable[[int], torch.Tensor]:
        def alloc(nbytes: int) -> torch.Tensor:
            size = self.STAMP + nbytes
            path = self.dir / f"v{version}.bin"
            old = next(iter(self.files)) if len(self.files) >= self.KEEP else None
            if old is not None and len(self.files[old]) == size:
                os.replace(self.dir / f"v{old}.bin", path)
                self.files[version] = self.files.pop(old)
            else:
                with open(path, "w+b") as fh:
                    fh.truncate(size)
                    self.files[version] = mmap.mmap(fh.fileno(), size)
            self.files[version][:8] = (-1).to_bytes(8, "little", signed=True)  # not ready
            return torch.frombuffer(self.files[version], dtype=torch.uint8)[self.STAMP:]
        return alloc

    def commit(self, version: int, buckets: list[tuple[bytes, torch.Tensor]]) -> bytes:
        """Stamp `version`'s file as complete, drop files beyond KEEP; returns the manifest message."""
        self.files[version][:8] = version.to_bytes(8, "little", signed=True)
        while len(self.files) > self.KEEP:
            old = next(iter(self.files))
            self.files.pop(old)  # the mapping closes once no bucket tensor refers to it
            (self.dir / f"v{old}.bin").unlink(missing_ok=True)
        offsets, at = [], self.STAMP
        for _, payload in buckets:
            offsets.append(at)
            at += payload.numel()
        return json.dumps({"version": version, "shm": str(self.dir / f"v{version}.bin"), "size": at,
                           "offsets": offsets, "headers": [json.loads(h) for h, _ in buckets]}).encode()

    def close(self) -> None:
        self.files.clear()
        shutil.rmtree(self.dir, ignore_errors=True)


def fetch_weights(address: str, version: int | None, timeout_s: float = 60.0,
                  stats: dict | None = None, shm: bool = True) -> Iterator[tuple[str, torch.Tensor]]:
    """Engine side: request `version` (None: the newest) and yield (name, tensor) bucket by bucket, as the buckets
    arrive (or, from a server on this machine, straight from its shared-memory file). `stats` receives the version
    actually received, bytes, seconds and the path taken ("shm" or "tcp")."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, int(timeout_s * 1000))
    sock.connect(address)
    t0 = time.perf_counter()
    received, received_version, path = 0, None, "tcp"
    try:
        sock.send(json.dumps({"version": version, "host": boot_id() if shm else None}).encode())
        expected, seen = None, 0
        while expected is None or seen < expected:
            try:
                header_frame, payload = sock.recv_multipart(copy=False)
            except zmq.Again:
                raise WireError(f"no weights from {address} within {timeout_s:g}s") from None
            header = json.loads(header_frame.bytes)
            if "error" in header:
                raise WireError(f"weight server at {address}: {header['error']}")
            if "shm" in header:
                data = _map(header, version)
                if data is None:  # not visible from here (another container): ask for the bytes instead
                    sock.send(json.dumps({"version": header["version"], "host": None}).encode())
                    continue
                path, received_version, received = "shm", header["version"], header["size"]
                _check_stamp(data, header)
                for bucket, offset in zip(header["headers"], header["offsets"]):
                    yield from unpack(bucket, data[offset:offset + _bucket_bytes(bucket)])
                _check_stamp(data, header)
                return
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
            stats.update({"transfer_s": time.perf_counter() - t0, "bytes": received, "version": received_version,
                          "path": path})


def _bucket_bytes(header: dict) -> int:
    return max((m["offset"] + m["nbytes"] for m in header["tensors"]), default=0)


def _check_stamp(data: memoryview, manifest: dict) -> None:
    if int.from_bytes(data[:8], "little", signed=True) != manifest["version"]:
        raise WireError(f"shared-memory weights of version {manifest['version']} were replaced while being read "
                        "(the reader fell a whole publish behind); fetch again")


def _map(manifest: dict, version: int | None) -> memoryview | None:
    """The manifest's file, mapped copy-on-write (the tensors are read in place, never written); None if this
    process cannot open it."""
    if version is not None and manifest.get("version") != version:
        raise WireError(f"got version {manifest.get('version')} while fetching {version}")
    try:
        with open(manifest["shm"], "rb") as fh:
            if os.fstat(fh.fileno()).st_size < manifest["size"]:
                raise WireError(f"{manifest['shm']} is shorter than its manifest says")
            return memoryview(mmap.mmap(fh.fileno(), max(1, manifest["size"]), access=mmap.ACCESS_COPY))
    except (OSError, KeyError, TypeError):
        return None
