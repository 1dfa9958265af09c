"""What model-written programs may use: the one list shared by the static check and the sandbox server.

Stdlib only, no imports: minazr/sandbox/code_check.py imports it as `minazr.sandbox.rules`, the sandbox server script
(minazr/sandbox/server.py, run as a script) imports it by file name.
"""

# The only modules a program may import. The sandbox server preloads exactly these (nothing can be imported after
# the child is confined), and refuses every other import at run time as well.
ALLOWED_MODULES = frozenset(
    "__future__ math cmath collections collections.abc itertools functools operator string re heapq bisect copy "
    "statistics fractions decimal numbers typing dataclasses enum json textwrap unicodedata array abc keyword "
    "difflib pprint struct base64 binascii zlib contextlib reprlib graphlib".split()
)

# Attributes of the allowed modules that hold other modules (collections._sys, dataclasses.inspect,
# statistics.random, json.decoder, ...). tests/test_code_check.py recomputes this list from the real modules,
# so a new Python version that adds one fails a test instead of opening a path.
MODULE_ATTRS = frozenset(
    "_casefix _compiler _constants _parser _string _sys _thread _types bltns builtins codecs copyreg decoder "
    "encoder inspect os random scanner sys types warnings".split()
)

# Attributes that lead to frames, code objects, globals or the import system, and helpers that read attributes
# by a computed name (attrgetter('x.y'), Formatter().get_field, inspect.getattr_static) or evaluate strings as
# code (typing's forward references).
WALK_ATTRS = frozenset(
    "gi_frame gi_code gi_yieldfrom f_back f_globals f_locals f_builtins f_code tb_frame tb_next cr_frame cr_code "
    "cr_await ag_frame ag_code co_code func_globals func_code mro modules posix _posix marshal _getframe "
    "_current_frames attrgetter methodcaller Formatter get_field getattr_static ForwardRef get_type_hints "
    "_eval_type _type_check".split()
)

BANNED_ATTRS = MODULE_ATTRS | WALK_ATTRS

# Builtins a program may not name (the server also removes them from the program's namespace).
# hash and id: their values differ between interpreters (hash seeds, addresses), so no task may depend on them.
BANNED_NAMES = frozenset(
    "open exec eval compile __import__ globals locals vars input breakpoint memoryview help exit quit hash id".split()
)
REMOVED_BUILTINS = tuple(sorted(BANNED_NAMES - {"__import__"}))

# Builtins that read or write attributes by name: allowed only as a direct call with a constant, harmless name.
ATTR_FUNCS = frozenset({"getattr", "setattr", "delattr", "hasattr"})
