"""Text ops on string tensors: StringNormalizer, StringConcat, StringSplit, RegexFullMatch, TfIdfVectorizer.

String tensors are numpy object arrays of Python ``str`` (as ``onnx.numpy_helper``
produces them). Semantics follow the ONNX specification:

- ``StringNormalizer-10`` drops the elements equal to a stop word (compared
  case-insensitively unless ``is_case_sensitive=1``), then lower- or upper-cases
  what is left (Unicode case mapping of Python's ``str``; ``locale`` is
  accepted but does not change the mapping, so Turkish dotted/dotless i
  follow the default Unicode rules). Input ``[C]`` or ``[1, C]``; when every
  element is dropped the output is ``[""]`` (``[[""]]`` for ``[1, C]``).
  Accents are kept, as in ONNX Runtime (``onnx.reference`` strips them, which
  the specification does not ask for); ``"ß".upper()`` is ``"SS"`` here,
  ONNX Runtime maps character by character and keeps ``"ß"``.
- ``StringConcat-20`` joins two string tensors element-wise with numpy broadcasting.
- ``StringSplit-20`` splits every element on ``delimiter`` (absent or empty:
  runs of whitespace, leading and trailing whitespace ignored), at most
  ``maxsplit`` times, padding with ``""`` to the longest split; the second
  output holds the number of substrings of each element. As in Python and
  ``onnx.reference``, "whitespace" is every Unicode space (tabs, newlines
  too) and an empty string split on a delimiter is one empty substring;
  ONNX Runtime splits on ``" "`` only and counts 0 substrings there.
- ``RegexFullMatch-20`` tells whether each element matches ``pattern`` as a
  whole. ONNX specifies RE2 syntax; the pattern is translated to Python's
  :mod:`re` with RE2's meaning (:func:`re2_to_python`): ``\\d \\w \\s \\b``
  and POSIX classes (``[[:alpha:]]``) are ASCII as in RE2 (Python's are
  Unicode), ``$`` matches only at the very end outside multi-line mode,
  ``\\z``, ``\\Q..\\E``, ``\\x{..}``, octal escapes and ``(?<name>..)`` are
  rewritten. What RE2 rejects is rejected (backreferences, lookaround, atomic
  groups, possessive quantifiers, ``\\Z``); what Python cannot express is
  rejected too (``\\pN``/``\\p{Greek}`` Unicode classes, ``\\C``, the
  ungreedy flag ``(?U)``, negated POSIX classes, ``\\D\\W\\S`` inside a
  class). One difference stays: RE2 runs in linear time, Python's
  backtracking engine can take exponential time on patterns such as
  ``(a+)+$`` against long non-matching text.
- ``TfIdfVectorizer-9`` counts the pool's n-grams (with up to
  ``max_skip_count`` skipped tokens between items) in each row and weights
  them: ``TF`` counts, ``IDF`` ``weights[i]`` where the count is positive,
  ``TFIDF`` ``count * weights[i]``, ``i`` the n-gram's position in the pool
  (as the specification and ONNX Runtime index ``weights``; ``onnx.reference``
  indexes it by output coordinate, the same when ``ngram_indexes`` is the
  identity, as in every ONNX node test).

Example:
    >>> import numpy as np
    >>> from edgeai.ops._base import OpContext, lookup
    >>> Split = lookup("StringSplit", "", 20)
    >>> x = np.array(["a b", "c"], dtype=object)
    >>> y, n = Split(OpContext(node_name="s", op_type="StringSplit", opset=20)).run(x)
    >>> y.tolist(), n.tolist()
    ([['a', 'b'], ['c', '']], [2, 1])
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import numpy as np

from edgeai.errors import InferenceError
from edgeai.ops._base import Op, OpContext, register

__all__ = ["compile_re2_pattern", "re2_to_python", "split_strings", "tfidf_counts"]


def _fail(ctx: OpContext, message: str) -> InferenceError:
    return InferenceError(f"{ctx.op_type} node {ctx.node_name!r} (opset {ctx.opset}): {message}")


def _as_strings(ctx: OpContext, x: Any, name: str = "input") -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind in "UT":  # fixed-width str_ and numpy 2's StringDType
        return arr.astype(object)
    if arr.dtype != object or not all(isinstance(v, str) for v in arr.reshape(-1)):
        raise _fail(ctx, f"{name} must be a string tensor, got {arr.dtype}; feed a numpy array of str")
    return arr


def _str_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in value]


# --------------------------------------------------------------------------- StringNormalizer


@register("StringNormalizer", since=10)
class StringNormalizer(Op):
    """StringNormalizer-10: drop stop words, then change case."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        action = ctx.attr("case_change_action", "NONE")
        action = action.decode() if isinstance(action, bytes) else str(action)
        if action not in ("NONE", "LOWER", "UPPER"):
            raise _fail(ctx, f"case_change_action={action!r} is not one of 'NONE', 'LOWER', 'UPPER'")
        self._action = action
        self._case_sensitive = bool(ctx.attr("is_case_sensitive", 0))
        stops = _str_list(ctx.attr("stopwords"))
        self._stops = set(stops) if self._case_sensitive else {w.casefold() for w in stops}

    def _keep(self, word: str) -> bool:
        return (word if self._case_sensitive else word.casefold()) not in self._stops

    def run(self, x: Any) -> tuple[np.ndarray]:
        arr = _as_strings(self.ctx, x)
        if not (arr.ndim == 1 or (arr.ndim == 2 and arr.shape[0] == 1)):
            raise _fail(self.ctx, f"input must have shape [C] or [1, C], got {arr.shape}")
        kept = [w for w in arr.reshape(-1) if self._keep(w)]
        if self._action == "LOWER":
            kept = [w.lower() for w in kept]
        elif self._action == "UPPER":
            kept = [w.upper() for w in kept]
        if not kept:
            kept = [""]
        out = np.empty(len(kept), dtype=object)
        out[:] = kept
        return (out if arr.ndim == 1 else out.reshape(1, -1),)


# --------------------------------------------------------------------------- StringConcat

_concat = np.frompyfunc(lambda a, b: a + b, 2, 1)


@register("StringConcat", since=20)
class StringConcat(Op):
    """StringConcat-20: element-wise ``X + Y`` with broadcasting."""

    def run(self, x: Any, y: Any) -> tuple[np.ndarray]:
        a, b = _as_strings(self.ctx, x, "X"), _as_strings(self.ctx, y, "Y")
        try:
            shape = np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise _fail(self.ctx, f"shapes {a.shape} and {b.shape} do not broadcast") from None
        out = np.empty(shape, dtype=object)
        if out.size:
            out[...] = _concat(a, b)
        return (out,)


# --------------------------------------------------------------------------- StringSplit


def split_strings(x: np.ndarray, delimiter: str | None, maxsplit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Split every string of ``x``; returns the ``""``-padded pieces ``[..., max_pieces]`` and the counts.

    >>> y, n = split_strings(np.array(["1,2", "3"], dtype=object), ",", None)
    >>> y.tolist(), n.tolist()
    ([['1', '2'], ['3', '']], [2, 1])
    """
    limit = -1 if maxsplit is None else maxsplit
    if delimiter:
        pieces = [s.split(delimiter, limit) for s in x.reshape(-1)]
    else:
        # whitespace: leading and trailing whitespace is ignored (the spec), also when maxsplit stops early
        # (Python's split(None, n) keeps the trailing whitespace of the unsplit rest)
        pieces = [s.strip().split(None, limit) for s in x.reshape(-1)]
    counts = np.array([len(p) for p in pieces], dtype=np.int64).reshape(x.shape)
    width = max((len(p) for p in pieces), default=0)
    out = np.full((len(pieces), width), "", dtype=object)
    for i, p in enumerate(pieces):
        out[i, : len(p)] = p
    return out.reshape(*x.shape, width), counts


@register("StringSplit", since=20)
class StringSplit(Op):
    """StringSplit-20: split on ``delimiter`` (whitespace when absent or empty), pad with ``""``."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        delim = ctx.attr("delimiter")
        self._delimiter = delim.decode() if isinstance(delim, bytes) else delim
        maxsplit = ctx.attr("maxsplit")
        if maxsplit is not None and int(maxsplit) < 0:
            raise _fail(ctx, f"maxsplit must be non-negative, got {maxsplit}")
        self._maxsplit = None if maxsplit is None else int(maxsplit)

    def run(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
        return split_strings(_as_strings(self.ctx, x), self._delimiter, self._maxsplit)


# --------------------------------------------------------------------------- RegexFullMatch

_WORD = "0-9A-Za-z_"
_PERL_CLASSES = {"d": "0-9", "w": _WORD, "s": "\\t\\n\\f\\r "}
_POSIX_CLASSES = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "ascii": "\\x00-\\x7f",
    "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@\\[-`{-~",
    "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z",
    "word": _WORD,
    "xdigit": "0-9A-Fa-f",
}
_BOUNDARY = f"(?:(?<=[{_WORD}])(?![{_WORD}])|(?<![{_WORD}])(?=[{_WORD}]))"
_NOT_BOUNDARY = f"(?:(?<=[{_WORD}])(?=[{_WORD}])|(?<![{_WORD}])(?![{_WORD}]))"
_REPEAT = re.compile(r"\{(\d+)(?:,(\d*))?\}")
_FLAGS = re.compile(r"\(\?([a-zA-Z]*)(?:-([a-zA-Z]*))?[:)]")


def _octal(pattern: str, i: int) -> tuple[str, int]:
    """An RE2 octal escape at ``pattern[i]`` (after the backslash): (Python escape, next index)."""
    j = i
    while j < len(pattern) and j < i + 3 and pattern[j] in "01234567":
        j += 1
    if pattern[i] != "0" and j - i < 2:
        raise ValueError(f"backreference \\{pattern[i]} is not RE2 syntax (RE2 has no backreferences)")
    return f"\\U{int(pattern[i:j], 8):08x}", j


def re2_to_python(pattern: str) -> str:
    r"""Translate an RE2 pattern to Python :mod:`re` syntax with RE2's meaning.

    ``\d``, ``\w``, ``\s``, ``\b`` and POSIX classes are ASCII in RE2 (Unicode in
    Python) and are spelled out; ``\z``, ``\Q...\E``, ``\x{...}``, octal escapes and
    ``(?<name>...)`` are rewritten; ``$`` outside multi-line mode matches only at the
    very end. Raises ``ValueError`` for what RE2 rejects (backreferences, lookaround,
    atomic groups, possessive quantifiers, ``\Z``) and for what Python cannot express
    (``\p`` Unicode classes, ``\C``, the ungreedy flag ``(?U)``).

    >>> re2_to_python(r"\d+\z")
    '[0-9]+\\Z'
    """
    multiline = any("m" in (m.group(1) or "") for m in _FLAGS.finditer(pattern))
    if any("U" in (m.group(1) or "") + (m.group(2) or "") for m in _FLAGS.finditer(pattern)):
        raise ValueError("RE2's ungreedy flag (?U) has no Python equivalent")
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 >= n:
                raise ValueError("the pattern ends with a lone backslash")
            e = pattern[i + 1]
            if e == "Q":
                end = pattern.find("\\E", i + 2)
                literal = pattern[i + 2 :] if end < 0 else pattern[i + 2 : end]
                out.append("".join(ch if ch.isalnum() else "\\" + ch for ch in literal))
                i = n if end < 0 else end + 2
                continue
            if e in "dws":
                out.append(_PERL_CLASSES[e] if in_class else f"[{_PERL_CLASSES[e]}]")
            elif e in "DWS":
                if in_class:
                    raise ValueError(f"\\{e} inside a character class is not supported here")
                out.append(f"[^{_PERL_CLASSES[e.lower()]}]")
            elif e == "b" and not in_class:
                out.append(_BOUNDARY)
            elif e == "B" and not in_class:
                out.append(_NOT_BOUNDARY)
            elif e == "z":
                out.append("\\Z")
            elif e == "Z":
                raise ValueError("\\Z is not RE2 syntax (use \\z or $)")
            elif e in "pP":
                raise ValueError("RE2 Unicode classes (\\p{..}, \\pN) are not supported by Python's re")
            elif e == "C":
                raise ValueError("RE2's \\C (any byte) is not supported by Python's re")
            elif e.isdigit():
                text, i = _octal(pattern, i + 1)
                out.append(text)
                continue
            elif e == "x" and pattern.startswith("{", i + 2):
                end = pattern.find("}", i + 3)
                if end < 0:
                    raise ValueError("unterminated \\x{...} escape")
                out.append(f"\\U{int(pattern[i + 3 : end], 16):08x}")
                i = end + 1
                continue
            else:
                out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            if pattern.startswith("[:", i):
                end = pattern.find(":]", i + 2)
                name = pattern[i + 2 : end] if end > 0 else ""
                if name not in _POSIX_CLASSES:
                    raise ValueError(f"[:{name}:] is not a supported POSIX class (negated ones included)")
                out.append(_POSIX_CLASSES[name])
                i = end + 2
                continue
            if c == "[":
                out.append("\\[")  # Python warns on (and may one day nest) a bare [ in a class
                i += 1
                continue
            if c == "]":
                in_class = False
            out.append(c)
            i += 1
            continue
        if c == "[":
            in_class = True
            out.append(c)
            i += 1
            if pattern.startswith("^", i):
                out.append("^")
                i += 1
            if pattern.startswith("]", i):
                out.append("\\]")
                i += 1
            continue
        if pattern.startswith("(?", i):
            rest = pattern[i + 2 : i + 4]
            if rest[:1] in ("=", "!") or rest in ("<=", "<!"):
                raise ValueError("lookaround assertions are not RE2 syntax")
            if rest[:1] in (">", "(") or rest == "P=" or rest[:1] == "#":
                raise ValueError(f"'(?{rest[:1]}' groups are not RE2 syntax")
            if rest[:1] == "<":
                out.append("(?P<")
                i += 3
                continue
        if c == "{":
            rep = _REPEAT.match(pattern, i)
            if rep is None:  # not a counted repetition: a literal brace in RE2 (Python reads {,n} as one)
                out.append("\\{")
                i += 1
                continue
            if max(int(v) for v in rep.groups() if v) > 1000:
                raise ValueError("RE2 allows repetition counts up to 1000")
        if c in "*+?}" and pattern.startswith("+", i + 1):
            raise ValueError("possessive quantifiers are not RE2 syntax")
        if c == "$" and not multiline:
            out.append("\\Z")
            i += 1
            continue
        out.append(c)
        i += 1
    if in_class:
        raise ValueError("unterminated character class")
    return "".join(out)


def compile_re2_pattern(pattern: str) -> re.Pattern[str]:
    """Compile an RE2 pattern with Python's :mod:`re`, with RE2's meaning (see :func:`re2_to_python`).

    Raises ``ValueError`` for a pattern RE2 rejects or Python cannot express.

    >>> compile_re2_pattern(r"ab+\\z").fullmatch("abb") is not None
    True
    """
    translated = re2_to_python(pattern)
    try:
        return re.compile(translated)
    except re.error as exc:
        raise ValueError(str(exc)) from None


@register("RegexFullMatch", since=20)
class RegexFullMatch(Op):
    """RegexFullMatch-20: True where the whole string matches ``pattern``."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        pattern = ctx.attr("pattern")
        if pattern is None:
            raise _fail(ctx, "the 'pattern' attribute is required")
        pattern = pattern.decode() if isinstance(pattern, bytes) else str(pattern)
        try:
            self._regex = compile_re2_pattern(pattern)
        except ValueError as exc:
            raise _fail(ctx, f"pattern {pattern!r} is not a valid regular expression: {exc}") from None

    def run(self, x: Any) -> tuple[np.ndarray]:
        arr = _as_strings(self.ctx, x, "X")
        match = self._regex.fullmatch
        flat = np.fromiter((match(s) is not None for s in arr.reshape(-1)), dtype=bool, count=arr.size)
        return (flat.reshape(arr.shape),)


# --------------------------------------------------------------------------- TfIdfVectorizer


def tfidf_counts(
    rows: list[list[Any]],
    ngrams: dict[tuple[Any, ...], int],
    size: int,
    min_n: int,
    max_n: int,
    max_skip: int,
) -> np.ndarray:
    """Counts ``[len(rows), size]`` of every pool n-gram (-> output index) in each row.

    An n-gram of ``n > 1`` items with ``s`` skips takes items ``i, i + s + 1, ...``;
    every skip from 0 to ``max_skip`` is counted, unigrams once.

    >>> tfidf_counts([[1, 2, 1, 2]], {(1, 2): 0, (2,): 1}, 2, 1, 2, 0).tolist()
    [[2, 2]]
    """
    counts = np.zeros((len(rows), size), dtype=np.int64)
    for r, row in enumerate(rows):
        length = len(row)
        for n in range(min_n, max_n + 1):
            for skip in range(0, (max_skip if n > 1 else 0) + 1):
                step = skip + 1
                for start in range(0, length - (n - 1) * step):
                    j = ngrams.get(tuple(row[start : start + (n - 1) * step + 1 : step]))
                    if j is not None:
                        counts[r, j] += 1
    return counts


class _GramTable:
    """The pool's n-grams as integer keys over a vocabulary, for a vectorized count."""

    def __init__(self, ngrams: dict[tuple[Any, ...], int], max_n: int) -> None:
        items = sorted({item for gram in ngrams for item in gram}, key=lambda v: (type(v).__name__, v))
        self.vocab = {item: i for i, item in enumerate(items)}
        self.base = len(items) + 1
        self.usable = self.base ** max(max_n, 1) < 2**62
        self.keys: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        by_n: dict[int, list[tuple[int, int]]] = {}
        for gram, out in ngrams.items():
            by_n.setdefault(len(gram), []).append((self.key([self.vocab[v] for v in gram]), out))
        for n, pairs in by_n.items():
            pairs.sort()
            self.keys[n] = (np.array([k for k, _ in pairs], np.int64), np.array([o for _, o in pairs], np.int64))

    def key(self, ids: list[int]) -> int:
        k = 0
        for i in ids:
            k = k * self.base + i
        return k

    def counts(self, ids: np.ndarray, size: int, min_n: int, max_n: int, max_skip: int) -> np.ndarray:
        """``ids``: ``[R, C]`` vocabulary ids (-1: not in the pool). Same result as :func:`tfidf_counts`."""
        n_rows, length = ids.shape
        flat = np.zeros(n_rows * size, np.int64)
        row_of = np.arange(n_rows)[:, None]
        for n in range(min_n, max_n + 1):
            if n not in self.keys:
                continue
            pool_keys, pool_out = self.keys[n]
            for skip in range(0, (max_skip if n > 1 else 0) + 1):
                step = skip + 1
                width = length - (n - 1) * step
                if width <= 0:
                    continue
                parts = [ids[:, k * step : k * step + width] for k in range(n)]
                valid = np.logical_and.reduce([p >= 0 for p in parts])
                key = np.zeros((n_rows, width), np.int64)
                for p in parts:
                    key = key * self.base + p
                pos = np.minimum(np.searchsorted(pool_keys, key), pool_keys.size - 1)
                hit = valid & (pool_keys[pos] == key)
                cells = (np.broadcast_to(row_of, key.shape)[hit] * size + pool_out[pos[hit]]).ravel()
                flat += np.bincount(cells, minlength=flat.size)
        return flat.reshape(n_rows, size)

    def ids(self, rows: np.ndarray) -> np.ndarray:
        get = self.vocab.get
        return np.array([[get(v, -1) for v in row] for row in rows.tolist()], np.int64).reshape(rows.shape)


@register("TfIdfVectorizer", since=9)
class TfIdfVectorizer(Op):
    """TfIdfVectorizer-9: n-gram counts of a pool, as TF, IDF or TF-IDF."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        mode = ctx.attr("mode")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if mode not in ("TF", "IDF", "TFIDF"):
            raise _fail(ctx, f"mode must be 'TF', 'IDF' or 'TFIDF', got {mode!r}")
        self._mode = mode
        self._min_n = int(ctx.attr("min_gram_length", 0))
        self._max_n = int(ctx.attr("max_gram_length", 0))
        self._max_skip = int(ctx.attr("max_skip_count", 0))
        if not 1 <= self._min_n <= self._max_n:
            raise _fail(ctx, f"need 1 <= min_gram_length <= max_gram_length, got {self._min_n} and {self._max_n}")
        if self._max_skip < 0:
            raise _fail(ctx, f"max_skip_count must be non-negative, got {self._max_skip}")
        strings, ints = ctx.attr("pool_strings"), ctx.attr("pool_int64s")
        if (strings is None) == (ints is None):
            raise _fail(ctx, "exactly one of pool_strings and pool_int64s must be set")
        self._strings = strings is not None
        pool: list[Any] = _str_list(strings) if self._strings else [int(v) for v in ints]
        starts = [int(v) for v in ctx.attr("ngram_counts", [])]
        indexes = [int(v) for v in ctx.attr("ngram_indexes", [])]
        if not indexes or any(i < 0 for i in indexes):
            raise _fail(ctx, "ngram_indexes must be a non-empty list of non-negative output coordinates")
        if any(b < a for a, b in itertools.pairwise(starts)) or (starts and not 0 <= starts[-1] <= len(pool)):
            raise _fail(ctx, f"ngram_counts {starts} must be increasing start offsets into the pool of {len(pool)}")
        self._ngrams: dict[tuple[Any, ...], int] = {}
        k = 0
        for g, start in enumerate(starts):
            end = starts[g + 1] if g + 1 < len(starts) else len(pool)
            n = g + 1
            if (end - start) % n:
                raise _fail(ctx, f"the {n}-gram pool slice [{start}:{end}] is not a multiple of {n} items")
            for p in range(start, end, n):
                if k >= len(indexes):
                    raise _fail(ctx, f"ngram_indexes has {len(indexes)} entries, fewer than the pool's n-grams")
                gram = tuple(pool[p : p + n])
                if gram in self._ngrams:
                    raise _fail(ctx, f"the pool holds the {n}-gram {list(gram)} twice; list each n-gram once")
                self._ngrams[gram] = indexes[k]
                k += 1
        if k != len(indexes):
            raise _fail(ctx, f"ngram_indexes has {len(indexes)} entries but the pool holds {k} n-grams")
        self._size = max(indexes) + 1
        self._table = _GramTable(self._ngrams, self._max_n)
        weights = ctx.attr("weights")
        self._weights: np.ndarray | None = None
        if weights is not None and len(weights) > 0:
            if len(weights) != k:
                raise _fail(ctx, f"weights has {len(weights)} values, need {k} (one per pool n-gram)")
            # weights[i] scales the i-th pool n-gram, which lands at output ngram_indexes[i]
            self._weights = np.zeros(self._size, np.float32)
            self._weights[indexes[:k]] = np.asarray(weights, np.float32)

    def run(self, x: Any) -> tuple[np.ndarray]:
        arr = np.asarray(x)
        if self._strings:
            arr = _as_strings(self.ctx, arr)
        elif arr.dtype.kind not in "iu":
            raise _fail(self.ctx, f"input must be an int32/int64 tensor (the pool is pool_int64s), got {arr.dtype}")
        if arr.ndim not in (1, 2):
            raise _fail(self.ctx, f"input must have shape [C] or [N, C], got {arr.shape}")
        rows = arr.reshape(1, -1) if arr.ndim == 1 else arr
        if self._table.usable and rows.size:
            ids = self._table.ids(rows)
            counts = self._table.counts(ids, self._size, self._min_n, self._max_n, self._max_skip)
        else:  # a vocabulary too large for int64 n-gram keys: count tuple by tuple
            counts = tfidf_counts(rows.tolist(), self._ngrams, self._size, self._min_n, self._max_n, self._max_skip)
        w = self._weights if self._weights is not None else np.ones(self._size, np.float32)
        if self._mode == "TF":
            out = counts.astype(np.float32)
        elif self._mode == "IDF":
            out = np.where(counts > 0, w, np.float32(0)).astype(np.float32)
        else:
            out = (counts * w).astype(np.float32)
        return (out[0] if arr.ndim == 1 else out,)
