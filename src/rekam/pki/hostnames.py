"""Turning the host names and IP addresses a server answers to into certificate SAN entries."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from cryptography import x509

from rekam.pki.errors import InvalidHostName

_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_MAX_DNS_NAME_LENGTH = 253


def parse_host(host: str) -> x509.DNSName | x509.IPAddress:
    """Return the SAN entry for one host: an :class:`x509.IPAddress` or a :class:`x509.DNSName`.

    DNS names are lower-cased and must be ASCII (use the ``xn--`` form for international names);
    a wildcard is only accepted as the whole left-most label (``*.clinic.example``).
    """
    if not isinstance(host, str):
        raise InvalidHostName(f"Host names must be text, not {type(host).__name__}.")
    text = host.strip()
    if not text:
        raise InvalidHostName("A host name must not be empty.")
    if "%" in text:
        raise InvalidHostName(f"{text!r}: IPv6 zone identifiers cannot go into a certificate.")
    try:
        return x509.IPAddress(ipaddress.ip_address(text))
    except ValueError:
        pass
    name = text.lower().removesuffix(".")
    if not name.isascii():
        raise InvalidHostName(
            f"Host name {text!r} is not ASCII; write international names in their xn-- form."
        )
    if len(name) > _MAX_DNS_NAME_LENGTH:
        raise InvalidHostName(
            f"Host name {text!r} is longer than {_MAX_DNS_NAME_LENGTH} characters."
        )
    labels = name.split(".")
    if labels[0] == "*":
        if len(labels) < 3:
            raise InvalidHostName(
                f"Wildcard {text!r} must sit below a domain with at least two labels."
            )
        labels = labels[1:]
    for label in labels:
        if not _LABEL.fullmatch(label):
            raise InvalidHostName(
                f"Host name {text!r} is not valid: each dot-separated part must be 1-63 letters, "
                "digits or hyphens and must not start or end with a hyphen."
            )
    if labels[-1].isdigit():
        raise InvalidHostName(f"{text!r} is neither a valid IP address nor a valid host name.")
    return x509.DNSName(name)


def parse_hosts(hosts: Sequence[str]) -> list[x509.DNSName | x509.IPAddress]:
    """Parse every host, dropping duplicates but keeping the order (the first becomes the CN)."""
    if isinstance(hosts, str):
        raise InvalidHostName("Pass the hosts as a list of names, not as a single string.")
    entries: list[x509.DNSName | x509.IPAddress] = []
    for host in hosts:
        entry = parse_host(host)
        if entry not in entries:
            entries.append(entry)
    if not entries:
        raise InvalidHostName("A server certificate needs at least one host name or IP address.")
    return entries


def host_text(entry: x509.DNSName | x509.IPAddress) -> str:
    """The text form of a SAN entry, as used for the certificate's common name."""
    return str(entry.value)
