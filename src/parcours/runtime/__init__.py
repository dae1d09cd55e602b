"""Processes that combine the building blocks over the store.

For now the persona classification run; the journey tick and outbox dispatch come next.
"""
