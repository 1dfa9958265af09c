"""What the driver shares with rollout/ and learner/ (no Ray, no vLLM).

policy.py (GenRequest, Generation, the Policy interface a rollout pool implements), stream.py (streaming
generation over a Policy), wire.py (the versioned weight wire: learner publishes, engines load).
"""
