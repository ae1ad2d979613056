"""The one exception type for user errors: stages print its message on one line and exit non-zero."""


class HashbenchError(Exception):
    """A user error (bad param, missing file, incompatible method/dataset). Its message is one line that names
    the bad key, file or value and what is allowed."""
