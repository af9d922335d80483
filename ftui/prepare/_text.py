"""Column-wide string operations, written so that the per-character work happens in C.

Every function takes a list of ``str`` and is exact (Unicode-aware where it matters); the speed
comes from joining chunks of rows and letting ``bytes``/``str``/numpy scan them.
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain, filterfalse, repeat
from json.encoder import (  # the C encoders of json.dumps
    encode_basestring,
    encode_basestring_ascii,
)
from typing import Any

from ftui.textsafe import first_surrogate

CHUNK = 1 << 15  # rows per joined chunk
_JOIN = "\x00"


def chunks(values: Sequence, size: int = CHUNK) -> Iterator[Sequence]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


# ---------------------------------------------------------------- character profile


@dataclass
class Profile:
    """Facts about the characters of a column, gathered in one pass.

    ``upper``/``lower`` count letters as ``c.isalpha() and c.isupper()`` (``islower``) would;
    ``present`` holds which of the characters asked about occur; ``specials`` the characters
    that JSON must escape (quote, backslash, control characters, lone surrogates).
    """

    upper: int = 0
    lower: int = 0
    present: set[str] = field(default_factory=set)
    specials: set[str] = field(default_factory=set)

    tracked: set[str] = field(default_factory=set)  # the characters asked about

    def has_all(self, s: str) -> bool:
        """False when some character of ``s`` surely never occurs."""
        return all(ch in self.present or ch not in self.tracked for ch in s)


def profile(
    values: Sequence[str], interesting: str = "", labels: set[str] | None = None
) -> Profile:
    """The profile of a column; with ``labels`` (its few distinct values) each is looked at once
    and weighted by how often it occurs."""
    if labels is not None and len(labels) <= 1000:
        counts = Counter(values)
        prof = Profile()
        for value, k in counts.items():
            one = _profile([value], interesting)
            prof.upper += k * one.upper
            prof.lower += k * one.lower
            prof.present |= one.present
            prof.specials |= one.specials
        prof.tracked = set(interesting)
        return prof
    return _profile(values, interesting)


def _profile(values: Sequence[str], interesting: str) -> Profile:
    import numpy as np

    prof = Profile()
    missing = set(interesting)
    wide: Counter[str] = Counter()
    u8 = np.uint8
    for chunk in chunks(values):
        joined = "".join(chunk)
        for ch in list(missing):
            if ch in joined:
                missing.discard(ch)
        if not joined.isascii():
            wide.update("".join([s for s in chunk if not s.isascii()]))
        raw = joined.encode("utf-8", "surrogatepass")
        del joined
        a = np.frombuffer(raw, dtype=u8)
        # ASCII letters; bytes of multi-byte UTF-8 sequences are all >= 0x80 and never match
        prof.upper += int(np.count_nonzero((a - u8(65)) < 26))
        prof.lower += int(np.count_nonzero((a - u8(97)) < 26))
        controls = a < 32
        if controls.any():
            prof.specials.update(chr(x) for x in np.unique(a[controls]).tolist())
        for ch in '"\\':
            if ch.encode() in raw:
                prof.specials.add(ch)
    for ch, n in wide.items():
        if ch < "\x80":
            continue
        if "\ud800" <= ch <= "\udfff":
            prof.specials.add(ch)  # a lone surrogate: cannot be written as UTF-8
        elif ch.isalpha():
            if ch.isupper():
                prof.upper += n
            elif ch.islower():
                prof.lower += n
    prof.present = set(interesting) - missing
    prof.tracked = set(interesting)
    return prof


def first_absent(
    values: Sequence[str], options: Sequence[str], prof: Profile, skip: Callable[[str], bool]
) -> str | None:
    """The first option (not skipped) that is a substring of no value, or None."""
    for option in options:
        if skip(option):
            continue
        if not prof.has_all(option):
            return option  # one of its characters never occurs
        if not any(option in _JOIN.join(chunk) for chunk in chunks(values)):
            return option
    return None


# ---------------------------------------------------------------- prefixes and suffixes


def _shrink_prefix(prefix: str, s: str) -> str:
    n = min(len(s), len(prefix))
    k = 0
    while k < n and s[k] == prefix[k]:
        k += 1
    return prefix[:k]


def _shrink_suffix(suffix: str, s: str) -> str:
    n = min(len(s), len(suffix))
    k = 0
    while k < n and s[-1 - k] == suffix[-1 - k]:
        k += 1
    return suffix[len(suffix) - k :]


def common_prefix(values: Sequence[str], start: str | None = None) -> str:
    """The longest common prefix (of ``start`` too, when given)."""
    return _common(values, start, "startswith", _shrink_prefix)


def common_suffix(values: Sequence[str], start: str | None = None) -> str:
    """The longest common suffix (of ``start`` too, when given)."""
    return _common(values, start, "endswith", _shrink_suffix)


def _common(
    values: Sequence[str], start: str | None, method: str, shrink: Callable[[str, str], str]
) -> str:
    if not values:
        return start or ""
    xfix = values[0] if start is None else start
    rest = iter(values)
    while xfix:
        # C-speed scan to the first value that does not share the current candidate
        odd = next(filterfalse(operator.methodcaller(method, xfix), rest), None)
        if odd is None:
            break
        xfix = shrink(xfix, odd)
    return xfix


def all_start_with(values: Sequence[str], prefix: str) -> bool:
    return all(map(operator.methodcaller("startswith", prefix), values))


def none_start_with(values: Sequence[str], prefix: str) -> bool:
    return not any(map(operator.methodcaller("startswith", prefix), values))


def all_equal(values: Sequence[str], prefix: str | None = None) -> bool:
    """Whether all values are the same; ``prefix``, their common prefix when known, saves a pass
    (they are all equal exactly when the first is the common prefix and the lengths agree)."""
    if not values:
        return False
    if prefix is not None:
        return prefix == values[0] and len(set(map(len, values))) == 1
    return list(values).count(values[0]) == len(values)


def show(s: str) -> str:
    """A string as messages show it: backslashes, newlines, tabs and CRs escaped."""
    return s.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


# ---------------------------------------------------------------- rows


_hash = hash  # tests replace it to force collisions


def count_distinct(values: Any) -> int:
    """Distinct values of a numpy array, by sorting (numpy's hashing unique is slower)."""
    import numpy as np

    if len(values) == 0:
        return 0
    ordered = np.sort(values)
    return 1 + int(np.count_nonzero(ordered[1:] != ordered[:-1]))


def duplicate_positions(
    prompts: Sequence[str], completions: Sequence[str], completion_hashes: Any = None
) -> list[int]:
    """Positions of the second and later copies of an exact (prompt, completion) pair.

    Pairs are grouped by a 64-bit hash with numpy, then every candidate is compared for real, so
    a hash collision can cost time but never give a wrong answer.
    """
    import numpy as np

    n = len(prompts)
    if n < 2:
        return []
    hp = np.fromiter(map(_hash, prompts), dtype=np.int64, count=n)
    if count_distinct(hp) == n:
        return []  # no prompt repeats, so no pair does
    if completion_hashes is None or _hash is not hash:
        hc = np.fromiter(map(_hash, completions), dtype=np.int64, count=n)
    else:
        hc = completion_hashes
    with np.errstate(over="ignore"):
        key = hp * np.int64(1_000_003) ^ hc
    del hp, hc
    order = np.argsort(key, kind="stable")  # equal keys keep file order
    ordered = key[order]
    del key
    same = ordered[1:] == ordered[:-1]
    if not same.any():
        return []
    first_of_run = np.concatenate(([True], ~same))
    starts = np.flatnonzero(first_of_run)
    run = np.cumsum(first_of_run) - 1  # the run of each sorted slot
    later = np.flatnonzero(np.concatenate(([False], same)))
    candidates = order[later]
    origin = order[starts[run[later]]]
    out = []
    odd: set[int] = set()
    for i, j in zip(candidates.tolist(), origin.tolist(), strict=True):
        if prompts[i] == prompts[j] and completions[i] == completions[j]:
            out.append(i)
        else:
            odd.add(j)
    if odd:  # a hash collision: settle those runs pair by pair
        out_set = set(out)
        for j in odd:
            slot = int(np.flatnonzero(order == j)[0])
            r = run[slot]
            members = sorted(
                order[starts[r] : starts[r + 1] if r + 1 < len(starts) else n].tolist()
            )
            seen: set[tuple[str, str]] = set()
            for i in members:
                pair = (prompts[i], completions[i])
                if pair in seen:
                    out_set.add(i)
                else:
                    seen.add(pair)
                    out_set.discard(i)
        return sorted(out_set)
    out.sort()
    return out


def surrogate_positions(values: Sequence[str]) -> list[int]:
    """Positions of the values that hold a lone surrogate (JSON's ``"\\ud800"``): not Unicode
    text, refused at upload. Chunks of ASCII text are passed over at C speed."""
    found: list[int] = []
    for start in range(0, len(values), CHUNK):
        chunk = values[start : start + CHUNK]
        joined = "".join(chunk)
        if joined.isascii() or first_surrogate(joined) is None:
            continue
        found.extend(start + i for i, v in enumerate(chunk) if first_surrogate(v) is not None)
    return found


def drop_positions(values: Sequence, positions: Sequence[int]) -> Sequence:
    """``values`` without the items at the given sorted, distinct positions."""
    if not positions:
        return values
    out = values[:0]
    if isinstance(out, range):
        out = []
    prev = 0
    for i in positions:
        out.extend(values[prev:i])
        prev = i + 1
    out.extend(values[prev:])
    return out


def share(values: list[str], distinct: set[str]) -> list[str]:
    """The same list with equal strings as one object (saves memory for labels)."""
    canon = {v: v for v in distinct}
    return list(map(canon.__getitem__, values))


# ---------------------------------------------------------------- JSON Lines output

_ESCAPE_NEWLINE = operator.methodcaller("replace", "\n", "\\n")


def json_bodies(values: Sequence[str], specials: set[str]) -> Sequence[str]:
    """JSON string bodies (escaped, without the quotes) of ``values``, as ``json.dumps`` with
    ``ensure_ascii=False`` writes them. ``specials`` is a superset of the characters present
    that need escaping; the common cases take a C-speed path."""
    if specials:
        joined = "".join(values)
        specials = {ch for ch in specials if ch in joined}
    if not specials:
        return values
    if specials == {"\n"}:
        return list(map(_ESCAPE_NEWLINE, values))
    if any("\ud800" <= ch <= "\udfff" for ch in specials):
        return [_encode_surrogates(v) for v in values]
    return [encode_basestring(v)[1:-1] for v in values]


def _encode_surrogates(v: str) -> str:
    """A lone surrogate cannot be written as UTF-8: escape it (and only such strings) as \\uXXXX."""
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        return encode_basestring_ascii(v)[1:-1]
    return encode_basestring(v)[1:-1]


def jsonl_chunk(
    prompts: Sequence[str],
    prompt_tail: str,
    completions: Sequence[str],
    completion_head: str,
    completion_tail: str,
    specials: set[str],
) -> str:
    """``{"prompt":…,"completion":…}`` lines, compact, UTF-8 kept, each ending in a newline, for
    prompts ``p + prompt_tail`` and completions ``completion_head + c + completion_tail``."""
    ep = json_bodies(prompts, specials)
    ec = json_bodies(completions, specials)
    middle = (
        json_bodies([prompt_tail], specials)[0]
        + '","completion":"'
        + json_bodies([completion_head], specials)[0]
    )
    end = json_bodies([completion_tail], specials)[0] + '"}\n'
    return "".join(
        chain.from_iterable(
            zip(repeat('{"prompt":"'), ep, repeat(middle), ec, repeat(end), strict=False)
        )
    )
