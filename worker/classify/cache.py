"""Compiled-ruleset cache: a rules directory's ``Ruleset``, pickled in the cache
directory under a hash of everything it was compiled from.

Compiling the bundled rules takes ~0.5 s (YAML, validation, automata); unpickling
takes ~25 ms. The key covers each rule file's path and bytes, the classify code and
the versions of feedwatch, Python and the libraries whose objects the pickle holds,
so a changed input is a miss, never a stale hit. Reading, unpickling or writing that
fails is logged at debug and the rules are compiled: the cache can make loading
faster, never make it fail.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import logging
import os
import pickle
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import worker
from worker.classify.rules import rule_files
from worker.classify.ruleset import Ruleset

__all__ = ["cache_key", "load_cached"]

log = logging.getLogger(__name__)

_PREFIX = "ruleset-"
_SUFFIX = ".pickle"
_KEEP = 8
"""Compiled rulesets kept; older ones (least recently loaded) are removed."""
_STALE_TMP = 3600.0
"""Seconds after which a temporary file left by a killed writer is removed."""


def _code_files() -> list[Path]:
    # The classes a pickle refers to: an edited checkout with an unchanged
    # version string must not load objects built by the old code.
    here = Path(__file__).resolve().parent
    return [*sorted(here.glob("*.py")), here.parent / "models.py"]


def cache_key(root: Path) -> str:
    """sha256 over every input of compiling ``root``; OSError if one is unreadable."""
    import importlib.util

    import ahocorasick
    import pydantic

    h = hashlib.sha256()

    def part(label: str, data: bytes) -> None:
        tag = label.encode("utf-8", "surrogateescape")
        h.update(len(tag).to_bytes(8, "big") + tag + len(data).to_bytes(8, "big"))
        h.update(data)

    versions = (
        worker.__version__,
        sys.version,
        sys.implementation.cache_tag or "",
        pydantic.VERSION,
        str(getattr(ahocorasick, "__version__", "")),
        str(pickle.HIGHEST_PROTOCOL),
    )
    part("versions", "\0".join(versions).encode())
    # PyYAML's version by its __init__.py (which states it), found without
    # importing it: a cache hit needs no YAML at all (~10-20 ms a process).
    spec = importlib.util.find_spec("yaml")
    part("yaml", Path(spec.origin).read_bytes() if spec and spec.origin else b"")
    for path in _code_files():
        part(f"code:{path.name}", path.read_bytes())
    part("root", os.fsencode(root))
    for path in rule_files(root):
        part(f"rule:{path}", path.read_bytes())
    return h.hexdigest()


def load_cached(
    root: Path, cache_dir: str | os.PathLike[str], build: Callable[[Path], Ruleset]
) -> Ruleset:
    """The ruleset of ``root`` from the cache, else ``build(root)``, stored there.

    Errors of ``build`` (RuleError) propagate; the cache's own never do.
    """
    try:
        key = cache_key(root)
    except OSError as e:
        # A missing or unreadable directory or file: compiling says which, and how.
        log.debug("rules cache: no key for %s: %s", root, e)
        return build(root)
    path = Path(cache_dir) / f"{_PREFIX}{key}{_SUFFIX}"
    found = _read(path)
    if found is not None:
        return found
    ruleset = build(root)
    try:
        unchanged = cache_key(root) == key
    except OSError:
        unchanged = False
    if unchanged:  # a file edited while compiling: do not file it under the old key
        _write(path, ruleset)
    return ruleset


def _read(path: Path) -> Ruleset | None:
    try:
        with path.open("rb") as f:
            st = os.fstat(f.fileno())
            if st.st_uid != os.getuid() or st.st_mode & 0o077:
                log.debug("rules cache: ignoring %s: not private to this user", path)
                return None
            data = f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        log.debug("rules cache: cannot read %s: %s", path, e)
        return None
    # Unpickling creates ~100,000 objects at once: with collection on, the
    # collector walks the whole heap several times over (~3x the unpickling).
    collecting = gc.isenabled()
    gc.disable()
    try:
        # Our own file (this user's, mode 0600), written by _write below.
        found = pickle.loads(data)  # noqa: S301
    except Exception as e:  # truncated, corrupt or from other code: compile instead
        log.debug("rules cache: cannot unpickle %s: %s: %s", path, type(e).__name__, e)
        return None
    finally:
        if collecting:
            gc.enable()
    if not isinstance(found, Ruleset):
        log.debug("rules cache: %s holds a %s", path, type(found).__name__)
        return None
    with contextlib.suppress(OSError):
        os.utime(path)  # recently used: kept by _prune
    log.debug("rules cache: loaded %s", path)
    return found


def _write(path: Path, ruleset: Ruleset) -> None:
    folder = path.parent
    tmp: str | None = None
    try:
        data = pickle.dumps(ruleset, protocol=pickle.HIGHEST_PROTOCOL)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{_PREFIX}", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:  # mkstemp: mode 0600
            f.write(data)
        os.replace(tmp, path)
        tmp = None
        log.debug("rules cache: wrote %s", path)
    except Exception as e:  # read-only, full, not a directory, unpicklable...
        log.debug("rules cache: cannot write %s: %s: %s", path, type(e).__name__, e)
        return
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    _prune(folder)


def _prune(folder: Path) -> None:
    """Keep the ``_KEEP`` most recently used rulesets; drop abandoned temp files."""
    try:
        entries = [(p, p.stat().st_mtime) for p in folder.glob(f"{_PREFIX}*{_SUFFIX}")]
        entries.sort(key=lambda e: e[1], reverse=True)
        old = [p for p, _ in entries[_KEEP:]]
        cutoff = time.time() - _STALE_TMP
        old += [
            p for p in folder.glob(f".{_PREFIX}*.tmp") if p.stat().st_mtime < cutoff
        ]
        for p in old:
            p.unlink(missing_ok=True)
    except OSError as e:
        log.debug("rules cache: cannot prune %s: %s", folder, e)
