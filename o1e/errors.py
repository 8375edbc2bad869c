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
    """The exception a Ray task, actor or Ray Train worker raised, rather than Ray's wrapper around it."""
    seen = set()
    while id(err) not in seen:
        seen.add(id(err))
        if getattr(err, "cause", None) is not None:  # ray.exceptions.RayTaskError
            err = err.cause
        elif getattr(err, "worker_failures", None):  # ray.train.WorkerGroupError
            # a rank's own error, not the others' collateral ones (a broken collective) where there is one
            failures = [err.worker_failures[rank] for rank in sorted(err.worker_failures)]
            err = next((e for e in failures if is_deterministic(e)), failures[0])
        else:
            break
    return err


def _object_store_gave_up(err: BaseException) -> bool:
    from o1e.storage import StorageError

    return isinstance(err, (OSError, StorageError)) and "AWS Error" in str(err)


def is_deterministic(err: BaseException) -> bool:
    """Whether an error would recur on a retry: o1e's own config, data, storage and model-folder errors
    do; a lost worker or node, a crash, or an object store that gave up after its retries may not."""
    from pydantic import ValidationError

    from o1e.beir import DatasetError
    from o1e.config import ConfigError
    from o1e.storage import StorageError

    err = _root(err)
    if _object_store_gave_up(err):
        return False
    return isinstance(err, (ConfigError, ValidationError, DatasetError, StorageError))


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
    if _object_store_gave_up(err) and "O1E_S3_ENDPOINT" not in text:
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
