"""Model variants that exist only for tests: each is one file, registered by a fixture or a pytest plugin."""
