"""The vLLM worker extension that receives weights over the wire (minazr/contracts/wire.py) inside the engine's worker.

vLLM mixes this class into its worker (`worker_extension_cls="rollout.weight_extension.WeightReceiver"`), so the
method runs in the process that owns the model, whether the engine runs in-process or in its own subprocess; the
caller reaches it with `llm.collective_rpc("minazr_load_weights", args=(address, version))`.
"""

import time


class WeightReceiver:
    def minazr_load_weights(self, address: str, version: int, timeout_s: float = 120.0) -> dict:
        from minazr.contracts.wire import fetch_weights

        stats: dict = {}
        t0 = time.perf_counter()
        # reload_weights (vLLM's supported in-place reload) consumes the tensors as the buckets arrive
        self.reload_weights(weights_iterator=fetch_weights(address, version, timeout_s, stats))
        stats["load_s"] = time.perf_counter() - t0 - stats.get("transfer_s", 0.0)
        stats["fetch_and_load_s"] = time.perf_counter() - t0
        stats.setdefault("version", version)  # fetch_weights records the version it received
        return stats
