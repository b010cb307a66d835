"""The data lifecycle of a pool: retention and prune, set deletion, garbage collection, verify."""
