"""The data lifecycle of a pool: verify (scrub), retention and prune, garbage collection."""
