"""Each kernel-enforced layer of the sandbox, attacked directly: the audit hook, the import gates and the static
check are all off here (a test-only executor mode), so a test fails if its layer alone is removed.

Layers: CPU-time, address-space, file-size, open-file and process rlimits; closed descriptors; an empty, read-only
chroot; uid/gid 65534; a network namespace with no interface up; an empty environment.
"""

import os
import socket

import pytest
from conftest import require_isolation

from minazr.sandbox.executor import Executor

# Modules the bare child can use: whatever the server had loaded (nothing can be imported inside the chroot).
PRELUDE = "import os\nimport resource\nimport socket\nimport _thread\n\n"


@pytest.fixture(scope="module")
def bare():
    with Executor(workers=2, static_check=False, _hooks=False) as ex:
        assert not ex._free[0].info["hooks"]
        yield ex


def run(ex, body, inputs="", timeout_s=5.0):
    res = ex.run(PRELUDE + "def f():\n" + body, inputs, timeout_s=timeout_s, runs=1)
    assert not res.infra, res
    return res


def test_the_hooks_are_really_off(bare):
    # what the audit hook would refuse works here: the layers below are on their own
    res = run(bare, "    return os.getcwd(), os.listdir('/')")
    assert res.ok and res.output == "('/', [])", res


def test_cpu_time_and_memory_are_limited(bare):
    res = run(bare, "    return resource.getrlimit(resource.RLIMIT_CPU), resource.getrlimit(resource.RLIMIT_AS)",
              timeout_s=3.0)
    assert res.ok and res.output == f"((4, 5), ({512 * 2**20}, {512 * 2**20}))", res
    res = run(bare, "    resource.setrlimit(resource.RLIMIT_CPU, (100, 100))")  # a hard limit cannot be raised
    assert not res.ok and "ValueError" in res.error, res
    res = run(bare, "    return len(bytearray(600 * 2**20))")
    assert not res.ok and "MemoryError" in res.error, res


def test_no_file_can_be_written(bare):
    assert run(bare, "    return resource.getrlimit(resource.RLIMIT_FSIZE)").output == "(0, 0)"
    res = run(bare, "    return os.open('/pwned', os.O_WRONLY | os.O_CREAT)")
    assert not res.ok and ("PermissionError" in res.error or "OSError" in res.error), res


def test_open_files_are_limited(bare):
    res = run(bare, "    return [os.pipe() for _ in range(10)]")
    assert not res.ok and "Too many open files" in res.error, res


def test_no_process_or_thread_can_start(bare):
    res = run(bare, "    return os.fork()")
    assert not res.ok and "BlockingIOError" in res.error, res
    res = run(bare, "    return _thread.start_new_thread(print, ())")
    assert not res.ok and "can't start new thread" in res.error, res


def test_only_the_result_pipe_and_dev_null_are_open(bare):
    body = ("    open_fds = []\n    for fd in range(256):\n        try:\n            os.fstat(fd)\n"
            "        except OSError:\n            continue\n        open_fds.append(fd)\n    return open_fds")
    res = run(bare, body)
    assert res.ok and res.output == "[0, 1, 2, 3]", res


def test_the_filesystem_is_an_empty_read_only_root(bare):
    require_isolation(os.geteuid() == 0 or bare._free[0].isolated, "chroot (needs root or a user namespace)")
    res = run(bare, "    return os.listdir('/'), os.path.exists('/etc/passwd'), os.access('/', os.W_OK)")
    assert res.ok and res.output == "([], False, False)", res


def test_the_process_is_unprivileged(bare):
    require_isolation(os.geteuid() == 0, "dropping to uid 65534 (needs root)")
    res = run(bare, "    return os.getuid(), os.geteuid(), os.getgid(), os.getgroups()")
    assert res.ok and res.output == "(65534, 65534, 65534, [])", res
    res = run(bare, "    os.kill(1, 9)")  # PID 1 is the server (or, without a PID namespace, init): not ours
    assert not res.ok and ("PermissionError" in res.error or "ProcessLookupError" in res.error), res


def test_the_network_is_unreachable_loopback_included(bare):
    require_isolation(bare._free[0].isolated, "a network namespace (unshare)")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        res = run(bare, f"    s = socket.socket()\n    s.connect(('127.0.0.1', {port}))\n    return 'connected'")
    assert not res.ok and "OSError" in res.error and "unreachable" in res.error, res


def test_the_environment_is_empty(bare, monkeypatch):
    res = run(bare, "    return dict(os.environ)")
    assert res.ok and res.output == "{}", res
