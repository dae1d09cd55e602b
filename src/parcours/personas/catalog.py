"""The persona catalog and the persona survey, loaded from YAML files and validated.

The built-in catalog ships with parcours (`personas/catalog/*.yaml`, one persona per file,
named after its key). Operators add or edit personas in their own directory
(`PARCOURS_PERSONAS_DIR`): a file there with the key of a built-in persona replaces it.
Every problem is reported with the file, the key path inside it and what is wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from parcours.domain.errors import DomainError
from parcours.domain.persona import Persona, Survey

__all__ = [
    "Catalog",
    "CatalogError",
    "builtin_catalog_dir",
    "load_catalog",
    "load_survey",
]

SURVEY_VERSION = "v1"


class CatalogError(DomainError):
    """A catalog or survey file is invalid, or a change breaks a reference."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


def builtin_catalog_dir() -> Path:
    return Path(str(resources.files("parcours.personas") / "catalog"))


def _builtin_survey_dir() -> Path:
    return Path(str(resources.files("parcours.personas") / "survey"))


class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe YAML that refuses a key given twice (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506
    except UnicodeDecodeError as exc:
        raise CatalogError([f"{path}: not UTF-8 text ({exc.reason})"]) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise CatalogError([f"{path}:{where}: invalid YAML: {problem}"]) from exc


def _problems(path: Path, error: ValidationError) -> list[str]:
    out = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        out.append(f"{path}: {where}: {item['msg']}")
    return out


@dataclass(frozen=True)
class Catalog:
    """Personas by key, in a stable order (built-in first, then the operator's)."""

    personas: Mapping[str, Persona]
    survey: Survey

    def __contains__(self, key: object) -> bool:
        return key in self.personas

    def __getitem__(self, key: str) -> Persona:
        return self.personas[key]

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self.personas)

    def check_references(self, references: Iterable[tuple[str, Iterable[str]]]) -> None:
        """Refuse a catalog that no longer has personas something else still points to.

        `references` pairs what refers (e.g. "the default_persona setting", "12 debtors'
        current assignments") with the persona keys it uses.
        """
        problems = []
        for holder, keys in references:
            missing = sorted(set(keys) - set(self.personas))
            if missing:
                problems.append(
                    f"{holder} refer to persona(s) {', '.join(missing)} that the catalog "
                    f"no longer has (known: {', '.join(self.personas)})"
                )
        if problems:
            raise CatalogError(problems)


def _load_personas(directory: Path, into: dict[str, tuple[Persona, Path]]) -> list[str]:
    problems: list[str] = []
    files = sorted(directory.glob("*.yaml")) + sorted(directory.glob("*.yml"))
    for path in files:
        try:
            data = _read_yaml(path)
        except CatalogError as exc:
            problems.extend(exc.problems)
            continue
        if not isinstance(data, dict):
            problems.append(f"{path}: expected a mapping of persona fields at the top level")
            continue
        try:
            persona = Persona.model_validate(data)
        except ValidationError as exc:
            problems.extend(_problems(path, exc))
            continue
        if persona.key != path.stem:
            problems.append(f"{path}: key: {persona.key!r} must match the file name")
            continue
        into[persona.key] = (persona, path)
    return problems


def load_catalog(operator_dir: Path | None = None) -> Catalog:
    """Load and cross-check the built-in catalog, the operator's personas and the survey.

    Cached per directory and file modification times: an edited file is read again.
    """
    directory = operator_dir.resolve() if operator_dir is not None else None
    stamp: tuple[tuple[str, int], ...] = ()
    if directory is not None and directory.is_dir():
        stamp = tuple(
            (p.name, p.stat().st_mtime_ns)
            for p in sorted(directory.iterdir())
            if p.suffix in (".yaml", ".yml")
        )
    return _load(directory, stamp)


@lru_cache(maxsize=8)
def _load(operator_dir: Path | None, stamp: tuple[tuple[str, int], ...]) -> Catalog:
    del stamp  # part of the cache key only
    found: dict[str, tuple[Persona, Path]] = {}
    problems = _load_personas(builtin_catalog_dir(), found)
    if operator_dir is not None:
        if not operator_dir.is_dir():
            raise CatalogError([f"{operator_dir}: personas directory does not exist"])
        problems += _load_personas(operator_dir, found)
    if not found and not problems:
        problems.append("the persona catalog is empty")
    survey_path = _builtin_survey_dir() / f"{SURVEY_VERSION}.yaml"
    try:
        survey = load_survey(survey_path)
    except CatalogError as exc:
        raise CatalogError(problems + list(exc.problems)) from exc
    for persona, path in found.values():
        for index, signal in enumerate(persona.signals):
            if signal.feature not in _feature_names():
                problems.append(
                    f"{path}: signals.{index}.feature: unknown feature {signal.feature!r}"
                )
    unknown = sorted(survey.persona_keys() - set(found))
    if unknown:
        problems.append(
            f"{survey_path}: evidence names persona(s) {', '.join(unknown)} not in the catalog"
        )
    if problems:
        raise CatalogError(problems)
    return Catalog({key: persona for key, (persona, _) in found.items()}, survey)


def load_survey(path: Path) -> Survey:
    data = _read_yaml(path)
    if not isinstance(data, dict):
        raise CatalogError([f"{path}: expected a mapping at the top level"])
    try:
        return Survey.model_validate(data)
    except ValidationError as exc:
        raise CatalogError(_problems(path, exc)) from exc


def _feature_names() -> frozenset[str]:
    from parcours.personas.features import FEATURES

    return frozenset(f.name for f in FEATURES)
