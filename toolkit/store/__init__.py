"""The warehouse and everything that reads or writes it without a model: DuckDB, the SQL catalogue of `sql/`,
Arrow ingest, read-only queries and output files. Imports nothing from the rooms above it."""
