"""TLS 1.3 for ISO 15118-20 moved into the product: controller/iso15118/tls.py. This name
stays for HIL scripts written against it."""

from controller.iso15118.tls import (TlsHandshakeError, client_context, describe, handshake_step,  # noqa: F401
                                     server_context, tls13_missing, wrap_client_socket,
                                     wrap_server_nonblocking, wrap_server_socket)
