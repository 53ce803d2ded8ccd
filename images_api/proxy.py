"""Trust ``X-Forwarded-*`` headers from the deployment's own reverse proxy, and no one else."""

import ipaddress

from werkzeug.middleware.proxy_fix import ProxyFix


class TrustedProxy:
    """WSGI middleware: werkzeug's ``ProxyFix`` for requests from ``networks`` only.

    ``networks`` is a tuple of ``ipaddress`` networks (``IMAGES_API_TRUSTED_PROXY``).
    A request whose peer (``REMOTE_ADDR``) is in one of them gets its scheme,
    host, port, prefix and client address from the proxy's ``X-Forwarded-*``
    headers, so ``Location`` and ``Link`` show the public URL; any other
    peer's forwarded headers are ignored.
    """

    def __init__(self, app, networks):
        self.app = app
        self.networks = networks
        self.proxied = ProxyFix(app, x_for=1, x_proto=1, x_host=1, x_port=1, x_prefix=1)

    def trusts(self, address):
        """Whether ``address`` (a string, possibly empty or malformed) is a trusted proxy."""
        try:
            peer = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(peer in network for network in self.networks)

    def __call__(self, environ, start_response):
        if self.trusts(environ.get("REMOTE_ADDR", "")):
            return self.proxied(environ, start_response)
        return self.app(environ, start_response)
