"""Every deliberate error of the SDK is a DHVAEError and keeps its builtin base."""
import dhvae_sdk
from dhvae_sdk.checkpoint import CheckpointError
from dhvae_sdk.convert.official import OfficialCheckpointError
from dhvae_sdk.generator import GeneratorError
from dhvae_sdk.manifest import ModelFormatError
from dhvae_sdk.physics.overlap import CudaUnavailableError
from dhvae_sdk.runtime import BackendUnavailableError


def test_sdk_errors_share_one_top_level_base_and_keep_their_builtin_base():
    for error, builtin in [(CheckpointError, ValueError), (OfficialCheckpointError, ValueError),
                           (GeneratorError, ValueError), (ModelFormatError, ValueError),
                           (CudaUnavailableError, RuntimeError), (BackendUnavailableError, RuntimeError)]:
        assert issubclass(error, dhvae_sdk.DHVAEError), error
        assert issubclass(error, builtin), error
    assert not issubclass(KeyError, dhvae_sdk.DHVAEError)
