"""The configuration: TOML schema, loading with one-line errors, the legacy importer."""
