"""The smart-card layer: the Signer interface and its implementations.

`card.signer` holds the interface every signer implements; `card.software` is a
software key standing in for a card; `card.pcsc` (PC/SC through pyscard) talks to a
real or virtual card (`card.apdu` is the card profile's protocol, `card.virtual` the
virtual card behind pcscd + vsmartcard-vpcd, `card.testbed` starts/stops that stack).
The gateway never sees a card's private key: it asks a
Signer to sign bytes and gets a signature back.
"""
from card.signer import (  # noqa: F401
    CardAbsent,
    CardInfo,
    CardMismatch,
    PinError,
    Signer,
    SignerError,
)
