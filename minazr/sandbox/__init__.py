"""The sandbox for model-written code, and the values it hands back (no Ray, no vLLM).

executor.py (the pool of sandbox processes the driver talks to), server.py (the process itself, run as a script
inside its own namespaces), code_check.py and rules.py (static checks before anything runs), literals.py (the
only way values cross the sandbox boundary: safe literals, compared by the judge outside the trainer's process).
See docs/sandbox.md for the threat model.
"""
