"""One base class for every error this SDK raises on purpose.

``except dhvae_sdk.DHVAEError`` catches bad input, unusable files and missing backends alike,
while each subclass keeps the builtin base (ValueError, RuntimeError) callers already expect.
"""


class DHVAEError(Exception):
    """An error whose message names the problem and the fix."""
