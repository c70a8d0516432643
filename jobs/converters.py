"""URL converters.

Row IDs in URLs are matched only within the range a database primary key can hold: Django's
`int` converter accepts any number of digits, and SQLite raises OverflowError (a 500) for an
ID above 2^63−1 instead of finding nothing. A larger number simply does not match, so it is
a 404 like any other unknown ID.
"""

MAX_DATABASE_ID = 2**63 - 1


class DatabaseIdConverter:
    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if number > MAX_DATABASE_ID:
            raise ValueError("beyond any database ID")
        return number

    def to_url(self, value: int) -> str:
        return str(value)
