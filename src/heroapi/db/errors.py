"""The errors the data layer raises, whatever the backend: each driver's errors are translated
into these where they are caught, so that `heroapi.errors` maps them to HTTP answers in one
place."""


class DatabaseError(Exception):
    """Base of the errors this layer raises."""


class DatabaseUnavailable(DatabaseError):
    """The database cannot be reached now (refused, lost, or every connection busy): retry later."""


class DatabaseTimeout(DatabaseUnavailable):
    """No answer within `database_command_timeout`: the connection was closed, and what it had
    sent may have run on the server (so it is never sent again on another connection)."""


class TransactionConflict(DatabaseUnavailable):
    """The database gave up on a statement to settle a conflict with another transaction (a
    lock wait timed out, a deadlock, a serialization failure): nothing of it was kept, the
    connection is sound, and the same request may succeed if it is sent again."""


class IntegrityViolation(DatabaseError):
    """A constraint of the database refused the write (unique, foreign key, not null, check)."""


class DataRejected(DatabaseError):
    """The database refused a value (bad encoding, out of range, too long) that validation let
    through: a client error, never a 500."""
