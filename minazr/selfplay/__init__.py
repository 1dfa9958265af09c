"""The self-play algorithm, pure Python (no Ray, no vLLM; tests/test_layout.py keeps it so).

tasks/ (deduction, abduction, induction, math: propose, validate, judge), buffer.py (task buffers), prompts.py,
parsing.py (reading model output), rewards.py, advantages.py (GRPO, TRR++), step.py (one self-play step, top to
bottom). The step reaches models only through minazr.contracts.policy and programs only through minazr.sandbox.
"""
