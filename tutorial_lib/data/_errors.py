"""The one exception family raised by `tutorial_lib.data`."""


class DataError(Exception):
    """A data file is missing, cannot be fetched, fails verification, or cannot be parsed.

    The message always says what was wrong and what to do about it.
    """


class DownloadError(DataError):
    """A registered file is missing from the data root and could not be downloaded."""


class ChecksumError(DataError):
    """A file's sha256 does not match the registry; the file was not used."""
