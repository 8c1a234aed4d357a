"""The loaders: a seeded sampler, an endless host source feeding one DALI pipeline, and the
hand-off to torch; ``core`` holds what both share."""
