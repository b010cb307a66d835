"""The keys every test simulator accepts (tests assert the secret never leaks into messages)."""

ACCESS_KEY = "AKTEST0000000001"
SECRET_KEY = "sk-test-0123456789abcdef"
