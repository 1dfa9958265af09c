"""The benchmarks: `minazr bench` (loop.py: rollout tokens/s, the training loop's own figures, replay, the TRL
peer in peer.py), `minazr bench-executor` (executor.py) and `minazr bench-faults` (faults.py)."""
