"""The one error the sandbox raises: a message that names what failed and its log."""


class SandboxError(RuntimeError):
    """Building, starting or stopping the sandbox failed; the message says what and where."""
