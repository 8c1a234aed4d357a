"""The command lines and everything they need beyond the library: demo and bench data, the
bench, prepare, pictures of mixed batches. The library never imports this package."""
