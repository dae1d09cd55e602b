"""parcours: persona-based debt collection journeys."""

__version__ = "0.1.0"
