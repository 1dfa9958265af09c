"""The driver's side of `minazr scale`: a daemon thread that keeps the run's beacon fresh and answers scale
requests (minazr/contracts/control.py) by asking the rollout pool for the new size (rollout/worker.py,
RolloutPool.request). It answers at once, also while the main thread waits on a learner update; the pool applies
an accepted request at its next safe point (docs/cluster.md, "Scaling a running job").

    listener = ScaleListener(run_dir, pool).start()
    ...the training loop...
    listener.close()                    # before the pool closes: later requests are refused as "no driver"
"""

import logging
import threading

from minazr.contracts.control import Beacon

log = logging.getLogger(__name__)

BEAT_S = 5.0  # heartbeat interval (control.STALE_S is far longer)
CHECK_S = 0.5  # how often the control folder is looked at for requests


class ScaleListener:
    def __init__(self, run_dir, pool, write=print, join_timeout_s: float = 300.0):
        self.beacon = Beacon(run_dir)
        self.pool = pool
        self.join_timeout_s = join_timeout_s  # longer than a request can take (rollout.scale_timeout_s)
        self.write = write  # where accepted and refused requests are reported (the progress bar's writer)
        self._stop = threading.Event()
        # two threads: a request can wait up to rollout.scale_timeout_s for room, and the beacon must stay fresh
        self._threads = [threading.Thread(target=self._beat, name="minazr-beacon", daemon=True),
                         threading.Thread(target=self._answer, name="minazr-scale", daemon=True)]

    def start(self) -> "ScaleListener":
        for t in self._threads:
            t.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(BEAT_S):
            self.beacon.beat()

    def _answer(self) -> None:
        while not self._stop.wait(CHECK_S):
            try:
                for request in self.beacon.requests():
                    if self._stop.is_set():
                        break
                    if self.beacon.claim(request):  # else its asker withdrew it: never acted on
                        self._carry_out(request)
            except Exception:  # a file system hiccup must not end the listener: the next look tries again
                log.warning("scale listener: reading %s failed", self.beacon.dir, exc_info=True)

    def _carry_out(self, request) -> None:
        try:
            ok, message = self.pool.request(request.workers)
        except Exception as e:  # a Ray error while placing: refuse this request, keep the run going
            log.warning("scale request for %d workers failed: %s", request.workers, e)
            ok, message = False, f"refused: {type(e).__name__}: {e}"
        self.beacon.reply(request, ok, message)
        self.write(f"minazr scale: {message}")

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=self.join_timeout_s)
        try:
            for request in self.beacon.requests():  # asked while the run was ending
                self.beacon.reply(request, False, "refused: the run is ending")
        finally:
            self.beacon.close()
