"""Testing the blob layer: `cases.StoreCase` (a store under test with its fault and inspection
handles), `faulty` (fault injection: a local store failing midway through a write, and a
wrapper failing chosen operations of any store) and `conformance.BlobStoreConformance` (the
rules of storage/base.py as a suite every store's tests subclass)."""
