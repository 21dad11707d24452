"""Errors whose message already tells the user what is wrong: stages print them without a traceback and exit 1."""


class ConfigError(ValueError):
    """A bad params.yaml: the message names the key and the offending value."""


class DataError(ValueError):
    """Bad input data: the message names the file and the row."""


class ModelError(RuntimeError):
    """A model could not be loaded, or is unfit for what follows: the message says why and what to do."""


class DeviceError(ConfigError):
    """The requested device or precision does not exist on this machine (found where the device is used)."""


USER_ERRORS = (ConfigError, DataError, ModelError)
