"""The schema's migrations, applied in order by ``playhouse.migrations`` (README: Upgrading).

Each file is frozen once released: it describes its change with models and
SQL of its own, never with the package's current models.
"""
