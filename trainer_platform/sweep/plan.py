"""From `train.py -m ...` to a sweep: the command line's lists and/or a named sweep file (`+sweep=NAME`) expanded
into runs and validated (a grid, which train.py hands to the session as one batch), or an Optuna search set up
(sweep/search.py, run through Hydra's multirun); nothing is written here."""

from __future__ import annotations

from trainer_platform.compose import run_composer
from trainer_platform.errors import SpecError
from trainer_platform.flags import override_values
from trainer_platform.sweep import files
from trainer_platform.sweep.batch import SweepSession
from trainer_platform.sweep.overrides import axes, check_runs, combinations


def plan_sweep(overrides: list[str]) -> tuple[SweepSession, list[str]]:
    """(the sweep session, the overrides Hydra's multirun composes with: none for a grid, whose runs the session
    has) for `train.py -m OVERRIDES`."""
    file_name, rest = files.split_sweep_option(overrides)
    name = override_values(rest).get("name") or None
    name = None if name in ("null", "None") else name
    composer = run_composer()  # one per sweep: Hydra builds each distinct set of group choices once
    if file_name is None:
        runs = combinations(rest)
        composed = check_runs(runs, composer)
        session = SweepSession(axes=axes(rest), name=name, planned=runs, composer=composer, composed=composed)
        return session, []
    path, sweep = files.load(file_name)
    details = {"file": files.describe(sweep)}
    if sweep.search is not None:
        from trainer_platform.sweep.overrides import parse
        from trainer_platform.sweep.search import plan_search

        swept = [o.input_line for o in parse(rest) if o.is_sweep_override()]
        if swept:
            raise SpecError(swept[0], f"cannot join the search of {path.name}", "add it to the file's search.params")
        session, hydra_overrides = plan_search(path, sweep.search, sweep.base, rest, name)
        session.details.update(details)
        session.composer = composer
        return session, hydra_overrides
    sweep_axes, runs = files.expand(path, sweep, rest)
    try:
        composed = check_runs(runs, composer)
    except SpecError as exc:
        raise SpecError(exc.key, exc.problem, f"{exc.hint} (from {path})") from None
    session = SweepSession(
        axes=sweep_axes,
        name=name,
        sweep_file=path.stem,
        details=details,
        planned=runs,
        composer=composer,
        composed=composed,
    )
    return session, []
