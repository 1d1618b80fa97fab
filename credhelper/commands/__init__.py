"""What a person runs: login, status, configure, init, install_systemd, doctor, demo.

Nothing on the wire (errors, paths, protocol, client, frontends) or in the daemon core imports
from here; these modules import from them.
"""
