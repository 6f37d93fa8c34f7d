"""The APDU encoding rules of the card profile (pure functions, no card needed)."""
from __future__ import annotations

import pytest

from card import apdu
from card.signer import ECDSA_SHA256, RSA_SHA1, SM2_SM3, CardAbsent, PinError, SignerError


def test_commands_encode_as_short_apdus():
    assert apdu.select().encode() == bytes.fromhex("00A4040006F05357475701 00".replace(" ", ""))
    assert apdu.verify(b"1234").encode() == bytes.fromhex("002000810431323334")
    assert apdu.verify_status().encode() == bytes.fromhex("00200081")
    assert apdu.get_card_info().encode() == bytes.fromhex("80CA010000")
    assert apdu.read_certificate(0x0123, 0xF0).encode() == bytes.fromhex("80B00123F0")
    assert apdu.sign_hash(b"\xAA" * 32).encode() == bytes.fromhex("002A9E9A20" + "AA" * 32 + "00")
    with pytest.raises(ValueError):
        apdu.read_certificate(0x8000)
    with pytest.raises(ValueError):
        apdu.verify(b"")


@pytest.mark.parametrize("cmd", [
    apdu.Command(0x00, 0x20, 0x00, 0x81),                   # case 1
    apdu.Command(0x80, 0xCA, 0x01, 0x00, le=256),           # case 2
    apdu.Command(0x00, 0x20, 0x00, 0x81, b"1234"),          # case 3
    apdu.Command(0x00, 0x2A, 0x9E, 0x9A, b"\x01" * 35, le=256),  # case 4
])
def test_parse_is_the_inverse_of_encode(cmd):
    assert apdu.parse_command(cmd.encode()) == cmd


def test_parse_rejects_malformed_and_extended():
    for raw in (b"\x00\xA4", bytes.fromhex("00A40400050102"), bytes.fromhex("00A4040000000101")):
        with pytest.raises(ValueError):
            apdu.parse_command(raw)


def test_header_for_logs_never_holds_the_data():
    assert "1234" not in apdu.verify(b"1234").header()


@pytest.mark.parametrize("algorithm", [SM2_SM3, ECDSA_SHA256, RSA_SHA1])
def test_card_info_tlv_round_trip(algorithm):
    profile = apdu.CardProfile("ZK1234567890A", "张三丰", "91210200MA0000000X", "0A1B2C", algorithm, 1234)
    assert apdu.decode_card_info(apdu.encode_card_info(profile)) == profile


def test_card_info_rejects_bad_tlv_and_long_media_numbers():
    with pytest.raises(SignerError, match="not valid card-info TLV"):
        apdu.decode_card_info(b"\x01\x05AB")
    with pytest.raises(ValueError):
        apdu.encode_card_info(apdu.CardProfile("X" * 14, "h", "e", "c", SM2_SM3, 1))


def test_status_words_map_to_errors_users_can_act_on():
    apdu.check_sw(0x9000, "X")
    with pytest.raises(PinError, match="63C2.*2 tries left") as e:
        apdu.check_sw(0x63C2, "VERIFY PIN")
    assert e.value.tries_left == 2
    with pytest.raises(PinError, match="6983.*blocked") as e:
        apdu.check_sw(0x6983, "VERIFY PIN")
    assert e.value.tries_left == 0
    with pytest.raises(apdu.CardError, match="SIGN HASH: card returned SW 6982 .*PIN was not verified") as e:
        apdu.check_sw(0x6982, "SIGN HASH")
    assert e.value.sw == 0x6982 and not isinstance(e.value, (PinError, CardAbsent))
    with pytest.raises(apdu.CardError, match="6A82.*not a swgw-profile card"):
        apdu.check_sw(0x6A82, "SELECT")
    with pytest.raises(apdu.CardError, match="6F00"):
        apdu.check_sw(0x6F00, "SIGN HASH")
