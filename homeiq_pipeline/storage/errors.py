"""Why a snapshot could not be stored. In every case nothing was written."""


class StorageError(Exception):
    """The snapshot could not be stored; nothing was written."""


class UnexpectedPayload(StorageError):
    """An entry lacks its key, repeats a key, or has a value of the wrong type for its column."""


class DataLossRefused(StorageError):
    """The snapshot would mark too large a share of devices or entities as removed."""
