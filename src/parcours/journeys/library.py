"""Loading journey files: validation with errors naming the file, node and field.

The built-in library ships in `journeys/library/*.yaml`; operators add journeys (or new
versions of one) in `PARCOURS_JOURNEYS_DIR`. Every journey of every version stays
loadable, because a case stays on the version it entered until it is migrated.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from parcours.domain.errors import DomainError
from parcours.domain.journey import BranchNode, Experiment, Journey
from parcours.journeys.guards import GuardError, validate_args

__all__ = ["JourneyError", "Library", "journey_schema", "load_journey", "load_library"]


class JourneyError(DomainError):
    """A journey file is invalid; `problems` name the file, node and field."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


def builtin_library_dir() -> Path:
    return Path(str(resources.files("parcours.journeys") / "library"))


def _where(data: Any, loc: tuple[Any, ...]) -> str:
    """A pydantic error location in words: node ids instead of list positions."""
    parts: list[str] = []
    if len(loc) >= 2 and loc[0] == "nodes" and isinstance(loc[1], int):
        nodes = data.get("nodes") if isinstance(data, dict) else None
        node = nodes[loc[1]] if isinstance(nodes, list) and loc[1] < len(nodes) else None
        node_id = node.get("id") if isinstance(node, dict) else None
        parts.append(f"node {node_id!r}" if node_id else f"nodes[{loc[1]}]")
        rest = list(loc[2:])
        if rest and isinstance(node, dict) and rest[0] == node.get("type"):
            rest = rest[1:]  # the discriminator tag pydantic adds
        parts.extend(str(p) for p in rest)
    else:
        parts.extend(str(p) for p in loc)
    return ".".join(parts) if parts else "(top level)"


def load_journey(path: Path, personas: Iterable[str] | None = None) -> Journey:
    """One journey file, validated (graph, guards and, when given, the persona key)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise JourneyError([f"{path}: cannot read: {exc}"]) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise JourneyError([f"{path}:{where}: invalid YAML: {exc}"]) from exc
    if not isinstance(data, dict):
        raise JourneyError([f"{path}: expected a mapping with key, version, start, nodes"])
    try:
        journey = Journey.model_validate(data)
    except ValidationError as exc:
        raise JourneyError(
            f"{path}: {_where(data, tuple(e['loc']))}: {e['msg']}"
            for e in exc.errors(include_url=False)
        ) from None
    problems = []
    for node in journey.nodes:
        if isinstance(node, BranchNode):
            for i, case in enumerate(node.cases):
                try:
                    validate_args(case.guard, case.args)
                except GuardError as exc:
                    problems.append(f"{path}: node {node.id!r}.cases.{i}: {exc}")
    known = set(personas) if personas is not None else None
    if known is not None and journey.persona is not None and journey.persona not in known:
        problems.append(f"{path}: persona: {journey.persona!r} is not in the persona catalog")
    if problems:
        raise JourneyError(problems)
    return journey


class Library:
    """Every journey version by (key, version); the newest version of each by key; and
    the experiments run at enrolment."""

    def __init__(self, journeys: Iterable[Journey], experiments: Iterable[Experiment] = ()) -> None:
        self.versions: dict[tuple[str, int], Journey] = {}
        for journey in journeys:
            self.versions[(journey.key, journey.version)] = journey
        self.experiments = tuple(experiments)

    def active_experiment(self) -> Experiment | None:
        """The experiment new cases enter (at most one runs at a time)."""
        return next((e for e in self.experiments if e.active), None)

    def __iter__(self) -> Any:
        return iter(sorted(self.versions.values(), key=lambda j: (j.key, j.version)))

    def latest(self, key: str) -> Journey:
        versions = [j for (k, _), j in self.versions.items() if k == key]
        if not versions:
            raise KeyError(f"no journey {key!r} (known: {', '.join(self.journey_keys())})")
        return max(versions, key=lambda j: j.version)

    def get(self, key: str, version: int) -> Journey:
        return self.versions[(key, version)]

    def journey_keys(self) -> list[str]:
        return sorted({k for k, _ in self.versions})

    def for_persona(self, persona: str | None) -> Journey | None:
        """The newest journey made for `persona` (None: the universal journey)."""
        made = [j for j in self.versions.values() if j.persona == persona]
        return max(made, key=lambda j: j.version) if made else None


def load_library(
    operator_dir: Path | None = None, personas: Iterable[str] | None = None
) -> Library:
    """The built-in journeys plus the operator's; all problems are reported together."""
    known = list(personas) if personas is not None else None
    files = sorted(builtin_library_dir().glob("*.yaml"))
    if operator_dir is not None:
        if not operator_dir.is_dir():
            raise JourneyError([f"{operator_dir}: journeys directory does not exist"])
        files += sorted(operator_dir.glob("*.yaml"))
    journeys: list[Journey] = []
    problems: list[str] = []
    seen: dict[tuple[str, int], Path] = {}
    for path in files:
        try:
            journey = load_journey(path, known)
        except JourneyError as exc:
            problems.extend(exc.problems)
            continue
        first = seen.setdefault((journey.key, journey.version), path)
        if first != path:
            problems.append(
                f"{path}: {journey.name} is already defined in {first}: "
                "publish a change as a new version"
            )
            continue
        journeys.append(journey)
    experiments: list[Experiment] = []
    if operator_dir is not None and (operator_dir / "experiments").is_dir():
        keys = {j.key for j in journeys}
        for path in sorted((operator_dir / "experiments").glob("*.yaml")):
            try:
                experiment = Experiment.model_validate(yaml.safe_load(path.read_text("utf-8")))
            except (OSError, yaml.YAMLError, ValidationError) as exc:
                problems.append(f"{path}: {exc}")
                continue
            for i, arm in enumerate(experiment.arms):
                if arm.journey not in (None, "persona") and arm.journey not in keys:
                    problems.append(f"{path}: arms.{i}.journey: no journey {arm.journey!r}")
            experiments.append(experiment)
        if sum(e.active for e in experiments) > 1:
            problems.append(f"{operator_dir / 'experiments'}: more than one active experiment")
    if problems:
        raise JourneyError(problems)
    return Library(journeys, experiments)


def journey_schema() -> str:
    """The JSON Schema of journey files, for editors (YAML language servers read it)."""
    schema = Journey.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "parcours journey"
    return json.dumps(schema, indent=2)
