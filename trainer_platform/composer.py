"""Compose many override lists against one Hydra config at the cost of about one composition.

Hydra's compose does two things: it builds the config tree from the defaults list (which only the config-group
choices and `hydra.*` settings decide: the expensive part, reading and merging every YAML file), then applies the
value overrides (`a.b=1`, `+a.c=2`, `~a.d`) to it. A sweep's runs, or a batch's verl jobs, differ almost only in
values, so a `Composer` lets Hydra build each distinct tree once, keeps it pickled, and for each run applies that
run's value overrides to a fresh copy with Hydra's own override step (`ConfigLoaderImpl._apply_overrides_to_config`,
the step Hydra's compose ends with), then removes the `hydra` node as `hydra.compose` does. The result is the
config Hydra's compose returns for the same overrides.

Hydra is still the judge of every error: an override this path cannot take (a sweep list, a grammar error, a key
that does not exist, anything it raises) returns None, and the caller composes that run with Hydra's compose, whose
own error it reports. A Composer lives for one batch (config files edited meanwhile are not seen).
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any


class Composer:
    """Composes override lists against `config_name` in `config_dir`; the trees are cached by group choices."""

    def __init__(self, config_dir: Path, config_name: str) -> None:
        self.config_dir = Path(config_dir)
        self.config_name = config_name
        # how many times Hydra built a config tree (tests: one per distinct set of group choices)
        self.trees_built = 0
        self._loader: Any = None
        self._parser: Any = None
        self._parsed: dict[str, Any] = {}
        # the `hydra.*` overrides -> Hydra's config repository for them (their search path)
        self._repos: dict[tuple[str, ...], Any] = {}
        # (the `hydra.*` overrides, a key) -> whether the key names a config group
        self._groups: dict[tuple[tuple[str, ...], str], bool] = {}
        # the overrides that decide the tree -> the tree (pickled), or None when Hydra could not build it
        self._trees: dict[tuple[str, ...], bytes | Any | None] = {}

    def compose(self, overrides: Sequence[str]) -> Any | None:
        """The composed config (an OmegaConf DictConfig without the `hydra` node, interpolations unresolved), or
        None when this run must go through Hydra's own compose (see the module docstring)."""
        try:
            parsed = [self._parse(line) for line in overrides]
            if any(o.is_sweep_override() for o in parsed):
                return None
            hydra_lines = tuple(o.input_line for o in parsed if _is_hydra_setting(o))
            tree_lines = list(hydra_lines)
            values = []
            for o in parsed:
                if _is_hydra_setting(o):
                    continue
                # Hydra's own split (hydra._internal.defaults_list.Overrides): a group choice unless it names no
                # config group or its value is a dict
                if self._is_group(hydra_lines, o.key_or_group) and not isinstance(o.value(), dict):
                    tree_lines.append(o.input_line)
                else:
                    values.append(o)
            cfg = self._tree(tuple(tree_lines))
            if cfg is None:
                return None
            from hydra._internal.config_loader_impl import ConfigLoaderImpl

            ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
            return cfg
        except Exception:  # noqa: BLE001 - Hydra's compose of the same run reports it
            return None

    # ---- the parts, each made once -----------------------------------------------------------------------------

    def _parse(self, line: str) -> Any:
        found = self._parsed.get(line)
        if found is None:
            if self._parser is None:
                from hydra.core.override_parser.overrides_parser import OverridesParser

                self._parser = OverridesParser.create()
            (found,) = self._parser.parse_overrides([line])
            self._parsed[line] = found
        return found

    def _config_loader(self) -> Any:
        """Hydra's config loader for the folder, made as `hydra.initialize_config_dir` makes it; Hydra's global
        state is left as it was."""
        if self._loader is None:
            from hydra import initialize_config_dir
            from hydra.core.global_hydra import GlobalHydra
            from hydra.core.singleton import Singleton

            # set the running Hydra aside (inside `train.py -m`, Hydra's own) rather than copy it, as
            # initialize_config_dir's own backup would
            saved = Singleton._instances.pop(GlobalHydra, None)
            try:
                with initialize_config_dir(config_dir=str(self.config_dir), version_base="1.3"):
                    hydra = GlobalHydra.instance().hydra
                    assert hydra is not None
                    self._loader = hydra.config_loader
            finally:
                Singleton._instances.pop(GlobalHydra, None)
                if saved is not None:
                    Singleton._instances[GlobalHydra] = saved
        return self._loader

    def _is_group(self, hydra_lines: tuple[str, ...], key: str) -> bool:
        """Whether `key` names a config group where the `hydra.*` overrides make Hydra look for configs."""
        found = self._groups.get((hydra_lines, key))
        if found is None:
            repo = self._repos.get(hydra_lines)
            if repo is None:
                _, repo = self._config_loader()._parse_overrides_and_create_caching_repo(
                    self.config_name, list(hydra_lines)
                )
                self._repos[hydra_lines] = repo
            found = self._groups[(hydra_lines, key)] = bool(repo.group_exists(key))
        return found

    def _tree(self, tree_lines: tuple[str, ...]) -> Any | None:
        """A fresh copy of the tree these overrides decide (Hydra builds it the first time)."""
        if tree_lines not in self._trees:
            self._trees[tree_lines] = self._build(list(tree_lines))
        kept = self._trees[tree_lines]
        if kept is None:
            return None
        return pickle.loads(kept) if isinstance(kept, bytes) else copy.deepcopy(kept)

    def _build(self, tree_lines: list[str]) -> bytes | Any | None:
        from hydra.types import RunMode
        from omegaconf import open_dict

        try:
            cfg = self._config_loader().load_configuration(
                config_name=self.config_name, overrides=tree_lines, run_mode=RunMode.RUN, from_shell=False
            )
        except Exception:  # noqa: BLE001 - Hydra's compose of the run reports it
            return None
        self.trees_built += 1
        if "hydra" in cfg:  # as hydra.compose returns it
            with open_dict(cfg):
                del cfg["hydra"]
        try:
            return pickle.dumps(cfg)  # a pickled copy loads ~10x faster than a deepcopy of the config
        except Exception:  # noqa: BLE001 - a node pickle cannot take: copy it instead
            return cfg


def _is_hydra_setting(override: Any) -> bool:
    """A `hydra.*` override (e.g. hydra.searchpath): it may change where configs are found, so it is part of the
    tree's key."""
    return str(override.key_or_group).startswith("hydra")
