"""Journeys: the DSL loader, the planner, the policy gate."""
