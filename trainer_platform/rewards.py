"""The `data.reward` setting: which scorer verl calls for RL responses, checked before launch.

The scorers themselves live in the repo's verl/ folder (`tp_rewards.py`, loaded by verl in its own processes); this
module reads that file's registry (by path, stdlib-only code) so unknown scorers, unknown or mistyped options, bad
weights, missing user files and a function missing from a user's file all fail at validation (exit 2, naming the
key), never in a reward worker. A user's file is read with `ast`, not executed. `reward_kwargs` is what the job
builder hands verl as `reward.custom_reward_function.reward_kwargs`.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import math
from pathlib import Path
from types import ModuleType
from typing import Any

from trainer_platform.errors import SpecError, choices_hint, did_you_mean
from trainer_platform.paths import verl_ext_dir
from trainer_platform.spec import RewardSpec, RewardTerm

LIBRARY_FILE = "tp_rewards.py"
LIBRARY_FUNCTION = "compute_score"
# verl's own scorer, chosen per row by data_source (verl.utils.reward_score.default_compute_score)
VERL = "verl"
CUSTOM = "custom"
COMPOSITE = "composite"
# the keyword arguments verl's reward managers pass to a reward function (verl 0.9.1 reward_loop managers)
VERL_CALL_ARGS = ("data_source", "solution_str", "ground_truth", "extra_info")


@functools.cache
def library() -> ModuleType:
    """verl/tp_rewards.py, loaded by path (pure Python; no torch or verl)."""
    path = verl_ext_dir() / LIBRARY_FILE
    spec = importlib.util.spec_from_file_location("tp_rewards", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def builtin_scorers() -> list[str]:
    return sorted(library().SCORERS)


def scorer_of(reward: RewardSpec) -> str:
    """The scorer a reward setting selects: its `scorer`, else custom when a file is named, else verl's own."""
    if reward.scorer is not None:
        return reward.scorer
    return CUSTOM if reward.path is not None else VERL


def check_reward(reward: RewardSpec, key: str = "data.reward") -> None:
    """Refuse a reward setting that would fail (or be ignored) in verl's reward workers."""
    scorer = scorer_of(reward)
    allowed = [*builtin_scorers(), COMPOSITE, CUSTOM, VERL]
    if scorer not in allowed:
        raise SpecError(f"{key}.scorer", f"unknown scorer {scorer!r}", choices_hint(scorer, allowed))
    _refuse_unread(reward, scorer, key)
    if scorer == CUSTOM:
        check_user_function(key, reward.path, reward.name, reward.options)
    elif scorer == COMPOSITE:
        _check_terms(reward.terms, key)
    elif scorer != VERL:
        _check_options(scorer, reward.options, f"{key}.options")


def _refuse_unread(reward: RewardSpec, scorer: str, key: str) -> None:
    """Settings the chosen scorer never reads are refused, so no value a user sets is silently ignored."""
    if reward.path is not None and scorer != CUSTOM:
        raise SpecError(f"{key}.path", f"scorer {scorer} reads no file", f"set {key}.scorer=custom, or remove it")
    if reward.name != LIBRARY_FUNCTION and scorer != CUSTOM:
        raise SpecError(f"{key}.name", f"scorer {scorer} reads no function name", "only scorer=custom reads it")
    if reward.terms and scorer != COMPOSITE:
        raise SpecError(f"{key}.terms", f"scorer {scorer} has no terms", f"set {key}.scorer=composite, or remove it")
    if reward.options and scorer in (COMPOSITE, VERL):
        hint = "give each term its own options" if scorer == COMPOSITE else "pick a built-in scorer"
        raise SpecError(f"{key}.options", f"scorer {scorer} takes no options", hint)


def _check_options(scorer: str, options: dict[str, Any], key: str) -> None:
    problems = library().option_problems(scorer, options)
    if problems:
        option, problem, hint = problems[0]
        if problem.startswith(f"scorer {scorer} has no option"):
            guess = did_you_mean(option, library().SCORERS[scorer].options)
            hint = f"{guess} {hint}" if guess else hint
        raise SpecError(f"{key}.{option}", problem, hint)


def _check_terms(terms: tuple[RewardTerm, ...], key: str) -> None:
    if not terms:
        raise SpecError(f"{key}.terms", "a composite reward needs at least one term", "add {scorer: math, weight: 1}")
    allowed = [*builtin_scorers(), CUSTOM]
    for i, term in enumerate(terms):
        where = f"{key}.terms.{i}"
        if term.scorer not in allowed:
            raise SpecError(
                f"{where}.scorer", f"unknown term scorer {term.scorer!r}", choices_hint(term.scorer, allowed)
            )
        if not math.isfinite(term.weight):
            raise SpecError(f"{where}.weight", f"weight {term.weight} is not a finite number", "use e.g. 1.0 or -0.5")
        if term.scorer == CUSTOM:
            check_user_function(where, term.path, term.name, term.options)
            continue
        if term.path is not None or term.name != LIBRARY_FUNCTION:
            field = "path" if term.path is not None else "name"
            raise SpecError(f"{where}.{field}", f"scorer {term.scorer} reads no file", "only scorer=custom reads it")
        _check_options(term.scorer, term.options, f"{where}.options")
    if all(term.weight == 0 for term in terms):
        raise SpecError(f"{key}.terms", "every term has weight 0: the reward would always be 0", "give a term weight")


def check_user_function(key: str, path: str | None, name: str, options: dict[str, Any]) -> None:
    """A user's reward file exists, parses, defines `name` at top level, and (when `name` is a plain function) accepts
    verl's keyword arguments and the options given to it. The file is parsed, never executed."""
    if path is None:
        raise SpecError(f"{key}.path", "a custom reward needs the python file holding it", f"set {key}.path")
    file = Path(path)
    if not file.is_file():
        raise SpecError(
            f"{key}.path", f"reward function file {path} does not exist", f"point it at a .py file with {name}"
        )
    if file.suffix != ".py":
        raise SpecError(f"{key}.path", f"{path} is not a .py file (verl imports the reward file as a module)", "fix it")
    try:
        tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
    except SyntaxError as exc:
        raise SpecError(f"{key}.path", f"{path}:{exc.lineno}: not valid Python ({exc.msg})", "fix the file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{key}.path", f"cannot read {path}: {exc}", "make it a readable UTF-8 .py file") from None
    defined, functions, opaque = _top_level_names(tree)
    if name not in defined:
        if opaque:
            return  # `from x import *` or a module __getattr__ may define it: verl finds out when it loads the file
        guess = did_you_mean(name, functions)
        listed = ("functions in it: " + ", ".join(sorted(functions))) if functions else "it defines no functions"
        raise SpecError(f"{key}.name", f"{path} defines no {name!r}", f"{guess} {listed}".strip())
    fn = functions.get(name)
    if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
        _check_signature(key, path, fn, options)


def _top_level_names(tree: ast.Module) -> tuple[set[str], dict[str, ast.AST], bool]:
    """Names a module binds at top level (also inside top-level if/try/with), its functions, and whether it may bind
    names this cannot see."""
    defined: set[str] = set()
    functions: dict[str, ast.AST] = {}
    opaque = False
    stack: list[ast.stmt] = list(tree.body)
    while stack:
        node = stack.pop(0)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            defined.add(node.name)
            functions[node.name] = node
            opaque |= node.name == "__getattr__"
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            defined |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                opaque |= alias.name == "*"
                defined.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.If | ast.Try | ast.With):
            for block in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, block, []):
                    stack.extend(child.body if isinstance(child, ast.ExceptHandler) else [child])
    return defined, functions, opaque


def _check_signature(key: str, path: str, fn: ast.FunctionDef | ast.AsyncFunctionDef, options: dict[str, Any]) -> None:
    args = fn.args
    if args.kwarg is not None:
        return
    params = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}
    posonly = {a.arg for a in args.posonlyargs}
    needed = [a for a in (*VERL_CALL_ARGS, *options) if a not in params or a in posonly]
    if needed:
        raise SpecError(
            f"{key}.name",
            f"{path}:{fn.lineno}: {fn.name}() cannot take {', '.join(needed)} (verl calls it with keywords "
            f"{', '.join(VERL_CALL_ARGS)}{' plus the options' if options else ''})",
            f"def {fn.name}(data_source, solution_str, ground_truth, extra_info=None, **kwargs)",
        )


def reward_kwargs(reward: RewardSpec) -> dict[str, Any]:
    """What verl passes to our library's compute_score on every call (`reward_kwargs`), or to a custom function."""
    scorer = scorer_of(reward)
    if scorer == CUSTOM:
        return dict(reward.options)
    if scorer == COMPOSITE:
        terms = []
        for term in reward.terms:
            entry: dict[str, Any] = {"scorer": term.scorer, "weight": term.weight, "options": dict(term.options)}
            if term.scorer == CUSTOM:
                entry.update(path=term.path, name=term.name)
            if term.label:
                entry["label"] = term.label
            terms.append(entry)
        return {"scorer": COMPOSITE, "terms": terms}
    return {"scorer": scorer, "options": dict(reward.options)}


def user_files(reward: RewardSpec | None) -> list[str]:
    """The user's reward files a job reads (a remote launcher ships them)."""
    if reward is None:
        return []
    paths = [reward.path] if scorer_of(reward) == CUSTOM else [t.path for t in reward.terms if t.scorer == CUSTOM]
    return [p for p in paths if p is not None]
