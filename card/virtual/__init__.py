"""A virtual swgw card behind pcscd + vsmartcard-vpcd (`python -m card.virtual --help`).

`applet` holds the card's APDU logic, `keystore` its key, `state` its persistent PIN
try counter, `vpcd` the link to the vpcd reader driver.
"""
