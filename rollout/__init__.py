"""Rollout side: RolloutWorker Ray actors, each owning one vLLM engine, and the vLLM worker extension that
receives versioned weights over ZMQ. Arrives with the rollout/learner split; empty until then."""
