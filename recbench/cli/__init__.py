"""The `recbench` command line: one thin module per command."""
