"""The built-in functions: their signatures (checked when parsing) and what they do.

Semantics follow expr-lang's builtins (what Argo Rollouts evaluates) plus Argo's own
`asInt`, `asFloat`, `isNaN`, `isInf`, `isNil` and `default`. Functions that take a predicate
(`all(list, # > 0)`) receive the list and a callable that evaluates the predicate on one
element; everything else receives evaluated arguments. Every value built is charged to the
evaluation's Budget first.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Final

from rollouts.analysis.expr.budget import (
    INT_MIN,
    MAX_NUMBER_LITERAL,
    Budget,
    checked_int,
    is_list,
    is_nan,
    is_number,
    number,
    type_name,
)

Plain = Callable[[Budget, int, list[object]], object]
# (budget, position, items, predicate(element, index), the other evaluated arguments)
MAX_CUTSET: Final = 256

HigherOrder = Callable[[Budget, int, Sequence[object], Callable[[object, int], object]], object]


@dataclass(frozen=True, slots=True)
class Builtin:
    low: int
    high: int | None  # None: any number of arguments
    plain: Plain | None = None
    higher: HigherOrder | None = None
    predicate_optional: bool = False  # count(list) and sum(list) work without one


# --- conversions and numbers -------------------------------------------------------------------


def to_float(b: Budget, pos: int, value: object, what: str) -> float:
    return float(number(b, pos, value, what))


_GO_INT: Final = re.compile(r"[+-]?[0-9]+\Z")
_GO_FLOAT: Final = re.compile(
    r"[+-]?(?:[0-9]+\.?[0-9]*(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?"
    r"|(?i:inf|infinity|nan))\Z"
)


def parse_go_float(b: Budget, pos: int, text: str, what: str) -> float:
    if len(text) > MAX_NUMBER_LITERAL or not _GO_FLOAT.match(text):
        raise b.fail(pos, f"{what}: {_short(text)} is not a number")
    value = float(text)
    if math.isinf(value) and "inf" not in text.lower():
        raise b.fail(pos, f"{what}: {_short(text)} is out of range")
    return value


def _short(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _fn_int(b: Budget, pos: int, args: list[object]) -> object:
    (x,) = args
    if isinstance(x, str):
        if len(x) > MAX_NUMBER_LITERAL or not _GO_INT.match(x):
            raise b.fail(pos, f"int(): {_short(x)} is not an integer")
        return checked_int(b, pos, int(x))
    return _truncate(b, pos, number(b, pos, x, "int()"), "int()")


def _truncate(b: Budget, pos: int, value: int | float, what: str) -> int:
    if isinstance(value, int):
        return value
    if math.isnan(value) or math.isinf(value):
        raise b.fail(pos, f"{what}: cannot convert {value} to an integer")
    if not INT_MIN <= value < 2.0**63:
        raise b.fail(pos, f"{what}: {value} is out of range (int64)")
    return int(value)


def _fn_float(b: Budget, pos: int, args: list[object]) -> object:
    (x,) = args
    if isinstance(x, str):
        return parse_go_float(b, pos, x, "float()")
    return to_float(b, pos, x, "float()")


def _fn_as_int(b: Budget, pos: int, args: list[object]) -> object:
    (x,) = args
    if isinstance(x, str):
        text = x.strip()
        if len(text) <= MAX_NUMBER_LITERAL and _GO_INT.match(text):
            return checked_int(b, pos, int(text))
        x = parse_go_float(b, pos, text, "asInt()")
    return _truncate(b, pos, number(b, pos, x, "asInt()"), "asInt()")


def _fn_as_float(b: Budget, pos: int, args: list[object]) -> object:
    (x,) = args
    if isinstance(x, str):
        return parse_go_float(b, pos, x.strip(), "asFloat()")
    return to_float(b, pos, x, "asFloat()")


def _fn_abs(b: Budget, pos: int, args: list[object]) -> object:
    value = number(b, pos, args[0], "abs()")
    if isinstance(value, int):
        return checked_int(b, pos, abs(value))
    return abs(value)


def go_round(value: float) -> float:
    """Half away from zero, as Go's math.Round; exact (no `x + 0.5` rounding error)."""
    if math.isnan(value) or math.isinf(value):
        return value
    whole = float(math.trunc(value))
    if abs(value - whole) >= 0.5:
        whole += math.copysign(1.0, value)
    return math.copysign(whole, value)


def go_pow(base: float, exponent: float) -> float:
    """base ** exponent as Go's math.Pow: ±Inf on overflow and for 0 ** -n, NaN when undefined."""
    try:
        return math.pow(base, exponent)
    except OverflowError:
        odd = exponent.is_integer() and int(exponent) % 2 == 1
        return -math.inf if base < 0 and odd else math.inf
    except ValueError:  # 0 ** negative, or a negative base to a fractional power
        if base == 0:
            odd = exponent.is_integer() and int(exponent) % 2 == 1
            return math.copysign(math.inf, base) if odd else math.inf
        return math.nan


def _rounding(name: str, fn: Callable[[float], float]) -> Plain:
    def apply(b: Budget, pos: int, args: list[object]) -> object:
        value = to_float(b, pos, args[0], f"{name}()")
        if math.isnan(value) or math.isinf(value):
            return value
        return fn(value)

    return apply


def _fn_is_nan(b: Budget, pos: int, args: list[object]) -> object:
    number(b, pos, args[0], "isNaN()")
    return is_nan(args[0])


def _fn_is_inf(b: Budget, pos: int, args: list[object]) -> object:
    value = number(b, pos, args[0], "isInf()")
    return isinstance(value, float) and math.isinf(value)


def _fn_is_nil(b: Budget, pos: int, args: list[object]) -> object:
    return args[0] is None


def _fn_default(b: Budget, pos: int, args: list[object]) -> object:
    return args[1] if args[0] is None else args[0]


def _fn_len(b: Budget, pos: int, args: list[object]) -> object:
    (x,) = args
    if isinstance(x, (str, list, tuple, Mapping)):
        return len(x)
    raise b.fail(pos, f"len() needs a string, array or map, got {type_name(x)}")


def _fn_type(b: Budget, pos: int, args: list[object]) -> object:
    return type_name(args[0])


# --- aggregates --------------------------------------------------------------------------------


def _flat_numbers(b: Budget, pos: int, values: Sequence[object], what: str,
                  depth: int = 0) -> list[int | float]:
    """Numbers of `values`, nested arrays flattened (as expr-lang's min/max/mean/median)."""
    b.step(pos, len(values))
    out: list[int | float] = []
    for value in values:
        if is_list(value) and depth < 8:
            assert isinstance(value, (list, tuple))
            out.extend(_flat_numbers(b, pos, value, what, depth + 1))
        else:
            item = number(b, pos, value, what)
            if is_nan(item):
                raise b.fail(pos, f"{what} of an array containing NaN")
            out.append(item)
    return out


def _extreme(name: str, pick: Callable[[list[int | float]], int | float]) -> Plain:
    def apply(b: Budget, pos: int, args: list[object]) -> object:
        if len(args) == 1 and not is_list(args[0]) and not is_number(args[0]):
            raise b.fail(pos, f"{name}() needs an array or several numbers, "
                              f"got {type_name(args[0])}")
        values = _flat_numbers(b, pos, args, f"{name}()")
        return pick(values) if values else None

    return apply


def _list_arg(b: Budget, pos: int, value: object, what: str) -> Sequence[object]:
    if not is_list(value):
        raise b.fail(pos, f"{what} needs an array, got {type_name(value)}")
    assert isinstance(value, (list, tuple))
    return value


def _sum_numbers(b: Budget, pos: int, values: Sequence[object]) -> int | float:
    total: int | float = 0
    for value in values:
        item = number(b, pos, value, "sum()")
        total = total + item
        if isinstance(total, int):
            checked_int(b, pos, total)
    return total


def _fn_mean(b: Budget, pos: int, args: list[object]) -> object:
    values = _flat_numbers(b, pos, _list_arg(b, pos, args[0], "mean()"), "mean()")
    if not values:
        # expr-lang answers 0 here; no data must never look like a healthy 0% error rate.
        raise b.fail(pos, "mean() of an empty array")
    return math.fsum(float(v) for v in values) / len(values)


def _fn_median(b: Budget, pos: int, args: list[object]) -> object:
    values = sorted(float(v) for v in
                    _flat_numbers(b, pos, _list_arg(b, pos, args[0], "median()"), "median()"))
    if not values:
        raise b.fail(pos, "median() of an empty array")
    middle = len(values) // 2
    if len(values) % 2:
        return values[middle]
    return (values[middle - 1] + values[middle]) / 2


def _fn_first(b: Budget, pos: int, args: list[object]) -> object:
    items = _list_arg(b, pos, args[0], "first()")
    return items[0] if items else None


def _fn_last(b: Budget, pos: int, args: list[object]) -> object:
    items = _list_arg(b, pos, args[0], "last()")
    return items[-1] if items else None


def _map_arg(b: Budget, pos: int, value: object, what: str) -> Mapping[object, object]:
    if not isinstance(value, Mapping):
        raise b.fail(pos, f"{what} needs a map, got {type_name(value)}")
    return value


def _fn_keys(b: Budget, pos: int, args: list[object]) -> object:
    found = _map_arg(b, pos, args[0], "keys()")
    b.build(pos, len(found))
    return list(found.keys())


def _fn_values(b: Budget, pos: int, args: list[object]) -> object:
    found = _map_arg(b, pos, args[0], "values()")
    b.build(pos, len(found))
    return list(found.values())


# --- strings -----------------------------------------------------------------------------------


def _string_arg(b: Budget, pos: int, value: object, what: str) -> str:
    if not isinstance(value, str):
        raise b.fail(pos, f"{what} needs a string, got {type_name(value)}")
    return value


def _string_fn(name: str, fn: Callable[[str], str]) -> Plain:
    def apply(b: Budget, pos: int, args: list[object]) -> object:
        text = _string_arg(b, pos, args[0], f"{name}()")
        b.build(pos, len(text))
        return fn(text)

    return apply


def _fn_trim(b: Budget, pos: int, args: list[object]) -> object:
    text = _string_arg(b, pos, args[0], "trim()")
    b.build(pos, len(text))
    if len(args) == 1:
        return text.strip()
    cutset = _string_arg(b, pos, args[1], "trim()")
    if len(cutset) > MAX_CUTSET:
        # str.strip(chars) costs len(text) * len(chars) in the worst case.
        raise b.fail(pos, f"trim(): more than {MAX_CUTSET} characters to trim")
    return text.strip(cutset)


def _affix(name: str, fn: Callable[[str, str], object]) -> Plain:
    def apply(b: Budget, pos: int, args: list[object]) -> object:
        text = _string_arg(b, pos, args[0], f"{name}()")
        affix = _string_arg(b, pos, args[1], f"{name}()")
        b.build(pos, len(text))
        return fn(text, affix)

    return apply


def _fn_split(b: Budget, pos: int, args: list[object]) -> object:
    text = _string_arg(b, pos, args[0], "split()")
    separator = _string_arg(b, pos, args[1], "split()")
    limit = -1
    if len(args) == 3:
        count = number(b, pos, args[2], "split()")
        if not isinstance(count, int):
            raise b.fail(pos, "split(): the count must be an integer")
        limit = count
    b.build(pos, 2 * len(text) + 1)  # the parts, and a list slot for each
    if limit == 0:
        return []
    if separator == "":  # Go splits into characters
        parts = list(text)
        return parts if limit < 0 or limit >= len(parts) else \
            [*parts[: limit - 1], "".join(parts[limit - 1 :])]
    return text.split(separator, limit - 1 if limit > 0 else -1)


def _fn_join(b: Budget, pos: int, args: list[object]) -> object:
    items = _list_arg(b, pos, args[0], "join()")
    glue = _string_arg(b, pos, args[1], "join()") if len(args) == 2 else ""
    parts = [_string_arg(b, pos, item, "join()") for item in items]
    b.build(pos, sum(map(len, parts)) + len(glue) * max(0, len(parts) - 1))
    return glue.join(parts)


def _fn_replace(b: Budget, pos: int, args: list[object]) -> object:
    text, old, new = (_string_arg(b, pos, a, "replace()") for a in args)
    count = len(text) + 1 if old == "" else text.count(old)
    b.build(pos, len(text) + count * max(0, len(new) - len(old)))
    if old == "":  # Go inserts `new` around every character
        return new + new.join(text) + new if text else new
    return text.replace(old, new)


def go_format_float(value: float) -> str:
    """A float as Go's `%v` prints it: shortest digits, exponent below 1e-4 or from 1e6 (%g)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign, digit_tuple, exponent = Decimal(repr(value)).as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple)).rstrip("0") or "0"
    exponent += len("".join(map(str, digit_tuple))) - len(digits)
    point = len(digits) + exponent  # the decimal point sits after this many digits
    prefix = "-" if sign else ""
    exp = point - 1
    if exp < -4 or exp >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{prefix}{digits}{'0' * (point - len(digits))}"
    return f"{prefix}{digits[:point]}.{digits[point:]}"


def go_format(b: Budget, pos: int, value: object, depth: int = 0) -> str:
    """`value` as Go's fmt `%v` prints it (what expr-lang's string() returns)."""
    b.step(pos)
    if depth > 20:
        raise b.fail(pos, "string(): value nested too deeply")
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        number(b, pos, value, "string()")
        return str(value)
    if isinstance(value, float):
        return go_format_float(value)
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        b.build(pos, len(value))
        parts = [go_format(b, pos, item, depth + 1) for item in value]
        b.build(pos, sum(map(len, parts)))
        return "[" + " ".join(parts) + "]"
    if isinstance(value, Mapping):
        b.build(pos, len(value))
        keys = sorted(value, key=str)
        parts = [f"{go_format(b, pos, k, depth + 1)}:{go_format(b, pos, value[k], depth + 1)}"
                 for k in keys]
        b.build(pos, sum(map(len, parts)))
        return "map[" + " ".join(parts) + "]"
    raise b.fail(pos, f"string(): {type_name(value)}")


def _fn_string(b: Budget, pos: int, args: list[object]) -> object:
    return go_format(b, pos, args[0])


# --- functions with a predicate ----------------------------------------------------------------

Pred = Callable[[object, int], object]


def _verdict(b: Budget, pos: int, value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise b.fail(pos, f"the predicate of {name}() must give a boolean, got {type_name(value)}")
    return value


def _ho_all(b: Budget, pos: int, items: Sequence[object], pred: Pred) -> object:
    return all(_verdict(b, pos, pred(x, i), "all") for i, x in enumerate(items))


def _ho_any(b: Budget, pos: int, items: Sequence[object], pred: Pred) -> object:
    return any(_verdict(b, pos, pred(x, i), "any") for i, x in enumerate(items))


def _ho_none(b: Budget, pos: int, items: Sequence[object], pred: Pred) -> object:
    return not any(_verdict(b, pos, pred(x, i), "none") for i, x in enumerate(items))


def _ho_one(b: Budget, pos: int, items: Sequence[object], pred: Pred) -> object:
    hits = 0
    for i, x in enumerate(items):
        if _verdict(b, pos, pred(x, i), "one"):
            hits += 1
            if hits > 1:
                return False
    return hits == 1


def _ho_filter(b: Budget, pos: int, items: Sequence[object], pred: Pred) -> object:
    b.build(pos, len(items))
    return [x for i, x in enumerate(items) if _verdict(b, pos, pred(x, i), "filter")]


def _ho_map(b: Budget, pos: int, items: Sequence[object], pred: Pred) -> object:
    b.build(pos, len(items))
    return [pred(x, i) for i, x in enumerate(items)]


def _ho_count(b: Budget, pos: int, items: Sequence[object], pred: Pred) -> object:
    return sum(1 for i, x in enumerate(items) if _verdict(b, pos, pred(x, i), "count"))


def _ho_sum(b: Budget, pos: int, items: Sequence[object], pred: Pred) -> object:
    return _sum_numbers(b, pos, [pred(x, i) for i, x in enumerate(items)])


def _finder(name: str, reverse: bool, want_index: bool) -> HigherOrder:
    def apply(b: Budget, pos: int, items: Sequence[object], pred: Pred) -> object:
        order = range(len(items) - 1, -1, -1) if reverse else range(len(items))
        for i in order:
            if _verdict(b, pos, pred(items[i], i), name):
                return i if want_index else items[i]
        return -1 if want_index else None

    return apply


def identity(item: object, index: int) -> object:
    """The predicate of `count(list)` and `sum(list)` when none is given."""
    return item


def _plain(low: int, high: int | None, fn: Plain) -> Builtin:
    return Builtin(low, high, plain=fn)


def _higher(fn: HigherOrder, optional: bool = False) -> Builtin:
    return Builtin(1 if optional else 2, 2, higher=fn, predicate_optional=optional)


BUILTINS: Final[Mapping[str, Builtin]] = MappingProxyType({
    # Argo Rollouts' own helpers
    "default": _plain(2, 2, _fn_default),
    "isNil": _plain(1, 1, _fn_is_nil),
    "isNaN": _plain(1, 1, _fn_is_nan),
    "isInf": _plain(1, 1, _fn_is_inf),
    "asInt": _plain(1, 1, _fn_as_int),
    "asFloat": _plain(1, 1, _fn_as_float),
    # numbers and conversions
    "len": _plain(1, 1, _fn_len),
    "abs": _plain(1, 1, _fn_abs),
    "round": _plain(1, 1, _rounding("round", go_round)),
    "ceil": _plain(1, 1, _rounding("ceil", lambda v: float(math.ceil(v)))),
    "floor": _plain(1, 1, _rounding("floor", lambda v: float(math.floor(v)))),
    "int": _plain(1, 1, _fn_int),
    "float": _plain(1, 1, _fn_float),
    "string": _plain(1, 1, _fn_string),
    "type": _plain(1, 1, _fn_type),
    # aggregates over arrays
    "min": _plain(1, None, _extreme("min", min)),
    "max": _plain(1, None, _extreme("max", max)),
    "mean": _plain(1, 1, _fn_mean),
    "median": _plain(1, 1, _fn_median),
    "sum": _higher(_ho_sum, optional=True),
    "count": _higher(_ho_count, optional=True),
    "first": _plain(1, 1, _fn_first),
    "last": _plain(1, 1, _fn_last),
    "keys": _plain(1, 1, _fn_keys),
    "values": _plain(1, 1, _fn_values),
    # predicates
    "all": _higher(_ho_all),
    "any": _higher(_ho_any),
    "none": _higher(_ho_none),
    "one": _higher(_ho_one),
    "filter": _higher(_ho_filter),
    "map": _higher(_ho_map),
    "find": _higher(_finder("find", reverse=False, want_index=False)),
    "findIndex": _higher(_finder("findIndex", reverse=False, want_index=True)),
    "findLast": _higher(_finder("findLast", reverse=True, want_index=False)),
    "findLastIndex": _higher(_finder("findLastIndex", reverse=True, want_index=True)),
    # strings
    "upper": _plain(1, 1, _string_fn("upper", str.upper)),
    "lower": _plain(1, 1, _string_fn("lower", str.lower)),
    "trim": _plain(1, 2, _fn_trim),
    "trimPrefix": _plain(2, 2, _affix("trimPrefix", str.removeprefix)),
    "trimSuffix": _plain(2, 2, _affix("trimSuffix", str.removesuffix)),
    "hasPrefix": _plain(2, 2, _affix("hasPrefix", str.startswith)),
    "hasSuffix": _plain(2, 2, _affix("hasSuffix", str.endswith)),
    "split": _plain(2, 3, _fn_split),
    "join": _plain(1, 2, _fn_join),
    "replace": _plain(3, 3, _fn_replace),
})  # fmt: skip
FUNCTION_NAMES: Final = frozenset(BUILTINS)
