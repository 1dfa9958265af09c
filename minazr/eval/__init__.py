"""`minazr eval`: CRUXEval and GSM8K with the harness and in-format prompts, judged in the sandbox.

benchmarks.py (items, prompts, judging), harness.py (the standard harness prompts), evaluate.py (the command),
probe_audit.py (a one-off audit of the induction probes against CRUXEval).
"""
