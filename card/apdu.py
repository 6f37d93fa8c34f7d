"""The APDU protocol of the swgw card profile: constants, encoders, decoders, status words.

Both sides use this module: `card.pcsc` (the host) builds commands and turns status
words into errors; `card.virtual` (the virtual card) parses commands and builds
responses. All commands are short APDUs (ISO 7816-4); larger responses come back
in pieces (`READ CERTIFICATE` by offset, anything else through 61xx + GET RESPONSE).

Commands (CLA INS P1 P2 [Lc data] [Le]):

  SELECT            00 A4 04 00 06 F0 53 57 47 57 01 00   select the swgw application
  VERIFY PIN        00 20 00 81 Lc PIN                    9000 ok, 63Cx wrong (x tries left),
                                                           6983 blocked
  VERIFY (status)   00 20 00 81                           no data: 9000 if verified in this
                                                           card session, else 63Cx/6983;
                                                           never uses up a try
  GET CARD INFO     80 CA 01 00 00                        TLV, see TAG_* below
  READ CERTIFICATE  80 B0 hi lo Le                        certificate bytes from offset
                                                           hi<<8|lo (<= 0x7FFF), up to Le
                                                           (00 = 256); fewer at the end
  SIGN HASH         00 2A 9E 9A Lc hash 00                PSO: COMPUTE DIGITAL SIGNATURE
                                                           over a host-computed hash;
                                                           6982 unless the PIN was verified
  GET RESPONSE      00 C0 00 00 Le                        the rest after a 61xx

SIGN HASH input (see `card.digests.signing_input`): SM2 - e = SM3(Z || M), 32 bytes,
Z with the default user ID 1234567812345678; ECDSA P-256 - SHA-256(M), 32 bytes;
RSA - the DER DigestInfo of SHA-1(M), 35 bytes. Output: SM2/ECDSA raw r||s (64
bytes), RSA the PKCS#1 v1.5 signature (modulus size).
"""
from __future__ import annotations

from dataclasses import dataclass

from card.signer import ECDSA_SHA256, RSA_SHA1, SM2_SM3, PinError, SignerError

AID = bytes.fromhex("F05357475701")  # F0 = proprietary; "SWGW" 01

CLA_ISO = 0x00
CLA_PROPRIETARY = 0x80

INS_SELECT = 0xA4
INS_VERIFY = 0x20
INS_GET_DATA = 0xCA
INS_READ_BINARY = 0xB0
INS_PSO = 0x2A
INS_GET_RESPONSE = 0xC0

P1_SELECT_BY_AID = 0x04
PIN_REF = 0x81
CARD_INFO_P1P2 = (0x01, 0x00)
PSO_SIGN_P1P2 = (0x9E, 0x9A)
MAX_OFFSET = 0x7FFF
MAX_PIN_LENGTH = 16

# GET CARD INFO tags (one byte tag, BER length, value)
TAG_MEDIA_NO = 0x01      # ASCII, <= 13 chars (介质号)
TAG_HOLDER = 0x02        # UTF-8
TAG_ENTERPRISE = 0x03    # ASCII
TAG_CERT_NO = 0x04       # ASCII
TAG_ALGORITHM = 0x05     # 1 byte, see ALGORITHM_IDS
TAG_CERT_LENGTH = 0x06   # 2 bytes big-endian

ALGORITHM_IDS = {SM2_SM3: 0x01, ECDSA_SHA256: 0x02, RSA_SHA1: 0x03}
ALGORITHM_NAMES = {v: k for k, v in ALGORITHM_IDS.items()}
HASH_LENGTHS = {SM2_SM3: 32, ECDSA_SHA256: 32, RSA_SHA1: 35}

MEDIA_NO_MAX = 13

# Status words
SW_OK = 0x9000
SW_WRONG_LENGTH = 0x6700
SW_SECURITY_NOT_SATISFIED = 0x6982
SW_PIN_BLOCKED = 0x6983
SW_CONDITIONS_NOT_SATISFIED = 0x6985
SW_WRONG_DATA = 0x6A80
SW_NOT_FOUND = 0x6A82
SW_WRONG_P1P2 = 0x6A86
SW_REFERENCE_NOT_FOUND = 0x6A88
SW_WRONG_PARAMETERS = 0x6B00
SW_INS_NOT_SUPPORTED = 0x6D00
SW_CLA_NOT_SUPPORTED = 0x6E00
SW_UNKNOWN = 0x6F00
SW_MEMORY_FAILURE = 0x6581
SW_END_OF_FILE = 0x6282

_MEANINGS = {
    SW_OK: "success",
    SW_END_OF_FILE: "end of file reached before Le bytes",
    SW_MEMORY_FAILURE: "card memory failure",
    SW_WRONG_LENGTH: "wrong length (Lc/Le) for this command",
    SW_SECURITY_NOT_SATISFIED: "security status not satisfied: the PIN was not verified in this card session",
    SW_PIN_BLOCKED: "PIN blocked: no tries left, the card must be unblocked by its issuer",
    SW_CONDITIONS_NOT_SATISFIED: "conditions of use not satisfied (is the swgw application selected?)",
    SW_WRONG_DATA: "incorrect data in the command",
    SW_NOT_FOUND: "application not found: this is not a swgw-profile card",
    SW_WRONG_P1P2: "incorrect P1/P2",
    SW_REFERENCE_NOT_FOUND: "referenced PIN/key not found",
    SW_WRONG_PARAMETERS: "wrong parameters (offset outside the certificate)",
    SW_INS_NOT_SUPPORTED: "instruction not supported by the card",
    SW_CLA_NOT_SUPPORTED: "class not supported by the card",
    SW_UNKNOWN: "card internal error, no precise diagnosis",
}


def sw_meaning(sw: int) -> str:
    if sw & 0xFFF0 == 0x63C0:
        return f"wrong PIN, {sw & 0x0F} tries left"
    if sw >> 8 == 0x61:
        return f"{sw & 0xFF or 256} more response bytes available"
    if sw >> 8 == 0x6C:
        return f"wrong Le, the card has {sw & 0xFF or 256} bytes"
    return _MEANINGS.get(sw, "unknown status word")


class CardError(SignerError):
    """The card answered a command with an error status word (`sw`)."""

    def __init__(self, message: str, sw: int):
        super().__init__(message)
        self.sw = sw


def check_sw(sw: int, operation: str) -> None:
    """Raise the error a status word means, naming the operation; return on 9000.

    63Cx and 6983 raise PinError (stop signing, never retry on your own); any other
    error raises CardError (a SignerError) carrying the SW.
    """
    if sw == SW_OK:
        return
    text = f"{operation}: card returned SW {sw:04X} ({sw_meaning(sw)})"
    if sw & 0xFFF0 == 0x63C0:
        tries = sw & 0x0F
        hint = "the card is now blocked" if tries == 0 else "signing stopped to protect the remaining tries; fix the PIN and reset it"
        raise PinError(f"{text}; {hint}", tries_left=tries)
    if sw == SW_PIN_BLOCKED:
        raise PinError(f"{text}", tries_left=0)
    raise CardError(text, sw)


# --- commands -----------------------------------------------------------------

@dataclass(frozen=True)
class Command:
    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None  # None: no Le; 1..256 (256 encoded as 00)

    def encode(self) -> bytes:
        if len(self.data) > 255:
            raise ValueError("command data longer than a short APDU allows (255)")
        out = bytes([self.cla, self.ins, self.p1, self.p2])
        if self.data:
            out += bytes([len(self.data)]) + self.data
        if self.le is not None:
            if not 1 <= self.le <= 256:
                raise ValueError("Le must be 1..256")
            out += bytes([self.le & 0xFF])
        return out

    def header(self) -> str:
        """CLA INS P1 P2 and the data length, for logs (never the data)."""
        return f"{self.cla:02X} {self.ins:02X} {self.p1:02X} {self.p2:02X} Lc={len(self.data)}"


def parse_command(apdu: bytes) -> Command:
    """Parse a short C-APDU (cases 1-4). Raise ValueError when malformed or extended."""
    if len(apdu) < 4:
        raise ValueError("APDU shorter than its header")
    cla, ins, p1, p2 = apdu[:4]
    body = apdu[4:]
    if not body:
        return Command(cla, ins, p1, p2)
    if len(body) == 1:
        return Command(cla, ins, p1, p2, le=body[0] or 256)
    lc = body[0]
    if lc == 0:
        raise ValueError("extended APDUs are not supported")
    if len(body) == 1 + lc:
        return Command(cla, ins, p1, p2, data=bytes(body[1:]))
    if len(body) == 2 + lc:
        return Command(cla, ins, p1, p2, data=bytes(body[1:-1]), le=body[-1] or 256)
    raise ValueError("APDU length does not match Lc")


def select() -> Command:
    return Command(CLA_ISO, INS_SELECT, P1_SELECT_BY_AID, 0x00, AID, le=256)


def verify(pin: bytes) -> Command:
    if not 1 <= len(pin) <= MAX_PIN_LENGTH:
        raise ValueError(f"PIN must be 1..{MAX_PIN_LENGTH} bytes")
    return Command(CLA_ISO, INS_VERIFY, 0x00, PIN_REF, pin)


def verify_status() -> Command:
    """VERIFY without data: asks whether the PIN is verified / how many tries are left."""
    return Command(CLA_ISO, INS_VERIFY, 0x00, PIN_REF)


def get_card_info() -> Command:
    return Command(CLA_PROPRIETARY, INS_GET_DATA, *CARD_INFO_P1P2, le=256)


def read_certificate(offset: int, length: int = 256) -> Command:
    if not 0 <= offset <= MAX_OFFSET:
        raise ValueError("certificate offset out of range")
    return Command(CLA_PROPRIETARY, INS_READ_BINARY, offset >> 8, offset & 0xFF, le=length)


def sign_hash(digest: bytes) -> Command:
    return Command(CLA_ISO, INS_PSO, *PSO_SIGN_P1P2, digest, le=256)


def get_response(length: int) -> Command:
    return Command(CLA_ISO, INS_GET_RESPONSE, 0x00, 0x00, le=length or 256)


# --- responses ----------------------------------------------------------------

def response(data: bytes = b"", sw: int = SW_OK) -> bytes:
    return bytes(data) + sw.to_bytes(2, "big")


def split_response(rapdu: bytes) -> tuple[bytes, int]:
    if len(rapdu) < 2:
        raise SignerError(f"card returned a {len(rapdu)}-byte response, shorter than a status word")
    return bytes(rapdu[:-2]), int.from_bytes(rapdu[-2:], "big")


# --- GET CARD INFO TLV ----------------------------------------------------------

@dataclass(frozen=True)
class CardProfile:
    """What GET CARD INFO returns."""

    media_no: str
    holder: str
    enterprise_code: str
    cert_no: str
    algorithm: str
    cert_length: int


def _tlv(tag: int, value: bytes) -> bytes:
    if len(value) < 0x80:
        return bytes([tag, len(value)]) + value
    if len(value) <= 0xFF:
        return bytes([tag, 0x81, len(value)]) + value
    raise ValueError("TLV value too long")


def encode_card_info(p: CardProfile) -> bytes:
    if not p.media_no or len(p.media_no) > MEDIA_NO_MAX:
        raise ValueError(f"media number must be 1..{MEDIA_NO_MAX} characters")
    return b"".join([
        _tlv(TAG_MEDIA_NO, p.media_no.encode("ascii")),
        _tlv(TAG_HOLDER, p.holder.encode("utf-8")),
        _tlv(TAG_ENTERPRISE, p.enterprise_code.encode("ascii")),
        _tlv(TAG_CERT_NO, p.cert_no.encode("ascii")),
        _tlv(TAG_ALGORITHM, bytes([ALGORITHM_IDS[p.algorithm]])),
        _tlv(TAG_CERT_LENGTH, p.cert_length.to_bytes(2, "big")),
    ])


def decode_card_info(data: bytes) -> CardProfile:
    fields: dict[int, bytes] = {}
    i = 0
    try:
        while i < len(data):
            tag, length = data[i], data[i + 1]
            i += 2
            if length == 0x81:
                length = data[i]
                i += 1
            elif length > 0x80:
                raise ValueError("unsupported TLV length")
            if i + length > len(data):
                raise ValueError("TLV value runs past the end")
            fields[tag] = bytes(data[i:i + length])
            i += length
        missing = [t for t in (TAG_MEDIA_NO, TAG_HOLDER, TAG_ENTERPRISE, TAG_CERT_NO, TAG_ALGORITHM, TAG_CERT_LENGTH)
                   if t not in fields]
        if missing:
            raise ValueError(f"missing tags {', '.join(f'{t:02X}' for t in missing)}")
        algo_id = fields[TAG_ALGORITHM][0]
        if algo_id not in ALGORITHM_NAMES:
            raise ValueError(f"unknown algorithm id {algo_id:02X}")
        return CardProfile(
            media_no=fields[TAG_MEDIA_NO].decode("ascii"),
            holder=fields[TAG_HOLDER].decode("utf-8"),
            enterprise_code=fields[TAG_ENTERPRISE].decode("ascii"),
            cert_no=fields[TAG_CERT_NO].decode("ascii"),
            algorithm=ALGORITHM_NAMES[algo_id],
            cert_length=int.from_bytes(fields[TAG_CERT_LENGTH], "big"),
        )
    except (IndexError, ValueError, UnicodeDecodeError) as exc:
        raise SignerError(f"GET CARD INFO: the card's answer is not valid card-info TLV ({exc})") from None
