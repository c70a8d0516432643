"""What the tests share, none of it a test: fakes, servers, builders and page steps.

Every test module imports what it needs from here (never from another test module); the
fixtures that most tests use are in tests/conftest.py.
"""
