"""Test support: fixtures' helpers, fakes and fault injectors shared by the test modules
(imported as `support.NAME`; no test module imports another test module)."""
