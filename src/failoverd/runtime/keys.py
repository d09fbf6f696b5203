"""The cluster's keyring, from the secret files named in the configuration."""

from failoverd.config.load import read_secret_file
from failoverd.config.schema import ClusterSection
from failoverd.wire import Keyring


def keyring_of(cluster: ClusterSection) -> Keyring:
    accepted = {k.key_id: read_secret_file(k.secret_file) for k in cluster.accept_keys}
    return Keyring((cluster.key_id, read_secret_file(cluster.secret_file)), accepted)


def api_keys_of(cluster: ClusterSection) -> tuple[bytes, ...]:
    """The secrets the HTTP API's control endpoints accept: current first, then the rotating."""
    current = read_secret_file(cluster.secret_file)
    return (current, *(read_secret_file(k.secret_file) for k in cluster.accept_keys))
