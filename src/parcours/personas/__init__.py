"""Personas: the catalog and survey (data files), survey scoring, features, the classifier
and its evaluation. Pure: no database access (the store reads, `runtime` orchestrates).
"""
