"""What a user sees when a command fails: one line saying what went wrong and what to do, and an exit
code: 2 for usage or config errors, 1 for data, storage or engine errors, 130 for Ctrl-C."""

from __future__ import annotations

import re

USAGE, FAILURE, INTERRUPTED = 2, 1, 130


def one_line(text: str) -> str:
    """A multi-line message (pydantic's, pyarrow's, a config report) folded into one line."""
    parts = [p.strip() for p in str(text).strip().splitlines() if p.strip()]
    line = "; ".join(parts)
    return re.sub(r":;", ":", line)


def _root(err: BaseException) -> BaseException:
    """The exception a Ray task or actor raised, rather than Ray's wrapper around it."""
    seen = set()
    while getattr(err, "cause", None) is not None and id(err) not in seen:
        seen.add(id(err))
        err = err.cause
    return err


def describe(err: BaseException) -> tuple[int, str]:
    """Exit code and one-line message for an exception that ended a command."""
    import pyarrow as pa
    from pydantic import ValidationError

    from o1e.beir import DatasetError
    from o1e.config import ConfigError
    from o1e.llm.base import EngineError
    from o1e.storage import StorageError

    err = _root(err)
    text = str(err)
    if isinstance(err, (OSError, StorageError)) and "AWS Error" in text and "O1E_S3_ENDPOINT" not in text:
        # pyarrow's S3 client gave up after its retries, and the message says nothing of what to do
        return FAILURE, one_line(f"error: {err}") + " (the object store failed after retries: check "\
            "O1E_S3_ENDPOINT, the network and the credentials, then rerun the same command: committed work is kept)"
    if isinstance(err, (ConfigError, ValidationError)):
        return USAGE, one_line(f"error: {err}")
    if isinstance(err, (DatasetError, StorageError, EngineError, FileNotFoundError)):
        return FAILURE, one_line(f"error: {err}")
    if isinstance(err, UnicodeDecodeError):
        return FAILURE, one_line(f"error: a file is not valid UTF-8 ({err.reason} at byte {err.start}): "
                                 "re-encode it as UTF-8")
    if isinstance(err, (OSError, pa.ArrowException)):
        return FAILURE, one_line(f"error: {type(err).__name__}: {err}") + " (check the path, the storage and "\
            "the network; --debug shows the traceback)"
    return FAILURE, one_line(f"internal error: {type(err).__name__}: {err}") + \
        " (rerun with --debug and report the traceback)"
