"""Pure domain models: no I/O, easy to test without fixtures."""
