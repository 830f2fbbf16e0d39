"""The error of data that cannot be loaded, shared by the image and the video loaders."""


class DataError(ValueError):
    """A dataset that cannot be loaded; the message says what was looked for where."""
