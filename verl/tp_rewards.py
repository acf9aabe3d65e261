"""The platform's reward library, loaded by verl via `reward.custom_reward_function.{path,name}` (name
`compute_score`) with the chosen scorer in `reward.custom_reward_function.reward_kwargs`.

Scorers (options and defaults in `SCORERS`; the README's "Rewards" section shows them in config):
- ``math``: the final answer (boxed, ``#### N``, "answer is", last number) against the ground truth
  (`tp_reward_math`).
- ``regex``, ``tags``, ``json``, ``length``: the form of the response (`tp_reward_format`).
- ``composite``: the weighted sum of terms, each a scorer above or a user's function (``path`` + ``name``).

`compute_score` follows verl's custom reward signature: it returns a float for one scorer, and for a composite a
dict with ``score`` (the weighted sum), ``acc`` (the same value, which DAPO's group filter reads by default) and
one ``reward_<term>`` entry per term that verl logs as a metric. `option_problems` is what the platform's
validation calls (loading this file by path) so a bad setting fails before launch, not in a worker.
Pure Python: this module is imported inside verl's reward workers.
"""

from __future__ import annotations

import importlib.util
import math
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.append(_HERE)  # verl loads this file by path; its siblings below are imported by name

import tp_reward_format  # noqa: E402
import tp_reward_math  # noqa: E402

REQUIRED = object()


class Option(NamedTuple):
    """One setting of a scorer: its default (REQUIRED: none), its type and, for strings, the allowed values.
    (NamedTuples, not dataclasses: verl executes this file without registering it in sys.modules, which dataclasses
    with string annotations need.)"""

    default: Any
    kind: str  # bool | int | float | str | str_list
    choices: tuple[str, ...] = ()
    minimum: float | None = None


class Scorer(NamedTuple):
    """A built-in score of (solution_str, ground_truth, extra_info) with its options."""

    score: Callable[..., float]
    options: dict[str, Option]
    # does it read the ground truth (False: it scores the response's form only)
    uses_ground_truth: bool = False


def _math(solution_str: str, ground_truth: Any, extra_info: Any, **options: Any) -> float:
    return tp_reward_math.math_score(solution_str, ground_truth, extra_info, **options)


def _form(score: Callable[..., float]) -> Callable[..., float]:
    def scorer(solution_str: str, ground_truth: Any, extra_info: Any, **options: Any) -> float:
        return score(solution_str, **options)

    return scorer


SCORERS: dict[str, Scorer] = {
    "math": Scorer(
        _math,
        {
            "format_score": Option(0.0, "float"),
            "strict": Option(False, "bool"),
            "rel_tol": Option(1e-4, "float", minimum=0),
            "several_answers": Option("reject", "str", ("reject", "last")),
            "ignore_prompt_echo": Option(True, "bool"),
        },
        uses_ground_truth=True,
    ),
    "regex": Scorer(
        _form(tp_reward_format.regex_score),
        {
            "pattern": Option(REQUIRED, "str"),
            "flags": Option("", "str"),
            "mode": Option("search", "str", ("search", "fullmatch")),
            "negate": Option(False, "bool"),
        },
    ),
    "tags": Scorer(
        _form(tp_reward_format.tags_score),
        {
            "tags": Option(["think", "answer"], "str_list"),
            "in_order": Option(True, "bool"),
            "only_tags": Option(False, "bool"),
            "partial": Option(False, "bool"),
        },
    ),
    "json": Scorer(
        _form(tp_reward_format.json_score),
        {
            "extract": Option(True, "bool"),
            "required_keys": Option([], "str_list"),
            "object_only": Option(False, "bool"),
        },
    ),
    "length": Scorer(
        _form(tp_reward_format.length_score),
        {
            "unit": Option("words", "str", ("words", "chars")),
            "min_len": Option(0, "int", minimum=0),
            "max_len": Option(512, "int", minimum=1),
            "buffer": Option(128, "int", minimum=0),
        },
    ),
}
COMPOSITE = "composite"
CUSTOM = "custom"


def _kind_ok(value: Any, kind: str) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if kind == "str":
        return isinstance(value, str)
    return isinstance(value, Sequence) and not isinstance(value, str) and all(isinstance(v, str) for v in value)


def option_problems(scorer: str, options: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """What is wrong with a built-in scorer's options, as (option, problem, hint) triples; [] when all is well."""
    spec = SCORERS[scorer].options
    out: list[tuple[str, str, str]] = []
    for key in options:
        if key not in spec:
            out.append((key, f"scorer {scorer} has no option {key}", "its options: " + ", ".join(sorted(spec))))
    for key, opt in spec.items():
        if key not in options:
            if opt.default is REQUIRED:
                out.append((key, f"scorer {scorer} needs it", f"set it ({opt.kind})"))
            continue
        value = options[key]
        if not _kind_ok(value, opt.kind):
            out.append((key, f"expected {opt.kind.replace('_', ' of ')}, got {value!r}", f"default: {opt.default!r}"))
        elif opt.choices and value not in opt.choices:
            out.append((key, f"{value!r} is not one of {', '.join(opt.choices)}", f"default: {opt.default!r}"))
        elif opt.minimum is not None and value < opt.minimum:
            out.append((key, f"{value!r} is below {opt.minimum:g}", f"default: {opt.default!r}"))
    out += _cross_problems(scorer, {k: v for k, v in options.items() if k in spec})
    return out


def _cross_problems(scorer: str, options: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    if scorer == "regex" and isinstance(options.get("pattern"), str):
        flags = options.get("flags", "")
        bad = sorted(set(str(flags)) - set("imsx"))
        if bad:
            return [("flags", f"unknown regex flag(s) {''.join(bad)}", "letters from: i m s x")]
        try:
            re.compile(options["pattern"], tp_reward_format.regex_flags(str(flags)))
        except re.error as exc:
            return [("pattern", f"not a valid regular expression: {exc}", "Python `re` syntax")]
    if scorer == "length":
        low, high = options.get("min_len", 0), options.get("max_len", 512)
        if isinstance(low, int) and isinstance(high, int) and low > high:
            return [("min_len", f"min_len {low} is above max_len {high}", "lower min_len or raise max_len")]
    return []


def _plain(value: Any) -> Any:
    """OmegaConf containers (verl passes its config's values) as plain dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [_plain(v) for v in value]
    return value


_USER_FUNCTIONS: dict[tuple[str, str], Callable[..., Any]] = {}


def user_function(path: str, name: str) -> Callable[..., Any]:
    """A user's reward function, loaded once per process from its file (verl's signature)."""
    key = (path, name)
    if key not in _USER_FUNCTIONS:
        spec = importlib.util.spec_from_file_location(f"tp_user_reward_{abs(hash(path))}", path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load reward file {path}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _USER_FUNCTIONS[key] = getattr(module, name)
    return _USER_FUNCTIONS[key]


def _score_value(result: Any) -> float:
    value = result["score"] if isinstance(result, Mapping) else result
    return float(value)


def _term_score(
    term: Mapping[str, Any], data_source: Any, solution_str: str, ground_truth: Any, extra_info: Any
) -> float:
    options = dict(term.get("options") or {})
    if term["scorer"] == CUSTOM:
        fn = user_function(str(term["path"]), str(term.get("name") or "compute_score"))
        result = fn(
            data_source=data_source,
            solution_str=solution_str,
            ground_truth=ground_truth,
            extra_info=extra_info,
            **options,
        )
        return _score_value(result)
    return SCORERS[term["scorer"]].score(solution_str, ground_truth, extra_info, **options)


def term_labels(terms: Sequence[Mapping[str, Any]]) -> list[str]:
    """Metric names of composite terms: reward_<label or scorer>, numbered when a name repeats."""
    labels: list[str] = []
    for term in terms:
        base = "reward_" + str(term.get("label") or term["scorer"])
        label, n = base, 2
        while label in labels:
            label, n = f"{base}_{n}", n + 1
        labels.append(label)
    return labels


def compute_score(
    data_source: Any,
    solution_str: str,
    ground_truth: Any,
    extra_info: Any = None,
    *,
    scorer: str = "math",
    options: Mapping[str, Any] | None = None,
    terms: Sequence[Mapping[str, Any]] | None = None,
    **kwargs: Any,
) -> float | dict[str, float]:
    """verl's custom reward entry: the chosen scorer's score (see module doc). Keyword arguments that name an
    option of the scorer also set it (``format_score=0.1``); others from verl are ignored."""
    extra = _plain(extra_info) if extra_info is not None else None
    if scorer == COMPOSITE:
        plain_terms = _plain(list(terms or []))
        scores = [_term_score(t, data_source, solution_str, ground_truth, extra) for t in plain_terms]
        total = sum(float(t.get("weight", 1.0)) * s for t, s in zip(plain_terms, scores, strict=True))
        out = {"score": total, "acc": total}
        out.update(zip(term_labels(plain_terms), scores, strict=True))
        return out
    chosen = SCORERS[scorer]
    settings = {**_plain(dict(options or {})), **{k: v for k, v in kwargs.items() if k in chosen.options}}
    return chosen.score(solution_str, ground_truth, extra, **settings)
