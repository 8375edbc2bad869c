"""o1e: shared spine of the O1 Embedder framework (config, storage, schemas, retrieval building blocks).

The stages live in the repository's top-level folders (synth/, committee/, train/, eval/, pipeline/) and
install as ``o1e.synth``, ``o1e.committee``, ... (pyproject.toml). Run from a checkout (a Ray job's working
dir, ``PYTHONPATH=.``), this package finds them beside it under the same names.
"""

import os as _os

__version__ = "0.1.0"

_STAGES = ("synth", "committee", "train", "eval", "pipeline")
_here = _os.path.dirname(_os.path.abspath(__file__))
_checkout = _os.path.dirname(_here)
if not _os.path.isdir(_os.path.join(_here, "train")) and all(
        _os.path.isfile(_os.path.join(_checkout, s, "__init__.py")) for s in _STAGES):
    __path__.append(_checkout)
