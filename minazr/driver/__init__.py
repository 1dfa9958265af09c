"""The driver: `minazr train` and what it runs on.

train.py (the run: start workers and learner, loop over self-play steps), pipeline.py (overlap of generation and
learning), config.py, checkpoint.py, metrics.py, models.py (embedded models), setup_env.py (`minazr setup`),
ray_session.py (joining Ray, remote calls with deadlines), experiment.py (`minazr experiment`).
"""
