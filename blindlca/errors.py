"""The error type for problems with the user's data or config."""


class InputError(ValueError):
    """A problem with the user's data or config, stated completely in the message.

    `blindlca.workflow.run` prints the message alone, without a traceback: the user needs the files and
    the fix, not the line of code that noticed.
    """
