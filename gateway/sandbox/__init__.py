"""The sandbox peer: plays the Single Window for the demo and the tests.

It takes DxpMsg envelopes from any transport, checks them as the platform would
(schema, signature, trusted certificate), archives every one it accepts, answers
DxpRep errors for bad ones, and plays realistic receipt sequences per document type.
"""
