"""The registry's live state, kept in memory next to the database: event fan-out (`events`), the
progress of running runs and their leases (`progress`), the PostgreSQL bus that shares both with
the other replicas (`cluster`), and the caches those events invalidate (`list_cache`, `name_cache`).
"""
