"""One module per raw layout. Each exposes `load(raw_dir, options) -> RawTables`; a generated
source also exposes `generate(raw_dir, size, seed, show_progress)`."""
