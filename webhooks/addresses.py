"""Where a webhook may be sent: http(s) only, and not into the portal's own network (loopback, link-local, private,
reserved addresses) unless MLOPS_WEBHOOK_ALLOW_PRIVATE says so. Checked when the URL is saved and again before
each send (a name can point elsewhere later)."""
import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings


class AddressRefused(Exception):
    pass


def check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AddressRefused("Only http:// and https:// URLs with a host name.")
    if parts.username or parts.password:
        raise AddressRefused("No user name or password in the URL: the body is signed instead.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(parts.hostname, port, proto=socket.IPPROTO_TCP)
    except (OSError, ValueError, UnicodeError) as exc:
        raise AddressRefused(f"{parts.hostname} does not resolve ({exc.__class__.__name__}).") from None
    if settings.MLOPS_WEBHOOK_ALLOW_PRIVATE:
        return
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if not address.is_global or address.is_multicast:
            named = parts.hostname if parts.hostname == str(address) else f"{parts.hostname} is {address}, which"
            raise AddressRefused(f"{named} is a loopback, link-local, private or reserved address: webhooks go "
                                 "to outside services only (MLOPS_WEBHOOK_ALLOW_PRIVATE).")
