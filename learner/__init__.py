"""Learner side: the Learner Ray actor (trainable model, loss, optimizer) and the weight publisher.
Arrives with the rollout/learner split; empty until then."""
