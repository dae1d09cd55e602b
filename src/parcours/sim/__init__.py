"""Simulation: synthetic portfolios, debtor behaviour and strategy comparison."""
