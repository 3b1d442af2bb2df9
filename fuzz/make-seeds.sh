#!/usr/bin/env bash
# Regenerates the fuzz fixtures and seed corpora with OpenSSL, an implementation independent of
# the parsers under test: real CSRs (RSA and EC, good and each kind the key policy refuses),
# real OCSP requests naming a throwaway test CA, and typical applicant-form strings.
#
# fixtures/ocsp-ca.{der,pk8} are that test CA's certificate and unencrypted P-256 key: the
# ocsp_request target signs its answers with them. They protect nothing.
#
# Files are overwritten by name; inputs added by hand (regression seeds, named regress-*) stay.
set -euo pipefail
cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

ec_key() { openssl genpkey -algorithm EC -pkeyopt "ec_paramgen_curve:$2" -out "$work/$1.key" 2>/dev/null; }
rsa_key() { openssl genpkey -algorithm RSA -pkeyopt "rsa_keygen_bits:$2" ${3:+-pkeyopt rsa_keygen_pubexp:$3} \
    -out "$work/$1.key" 2>/dev/null; }
csr() { openssl req -new -key "$work/$1.key" -subj "/CN=Fuzz Seed $1" -sha256 -outform "${3:-DER}" -out "$2"; }

# --- csr: what an applicant's token or ACME client submits.
mkdir -p corpus/csr
rsa_key rsa2048 2048 && csr rsa2048 corpus/csr/rsa2048.der
rsa_key rsa3072 3072 && csr rsa3072 corpus/csr/rsa3072.der
ec_key p256 P-256 && csr p256 corpus/csr/p256.der
csr p256 corpus/csr/p256.pem PEM
ec_key p384 P-384 && csr p384 corpus/csr/p384.der
# Each refusal of the key policy, so the fuzzer starts inside every branch.
rsa_key rsa1024 1024 && csr rsa1024 corpus/csr/policy-rsa1024.der
rsa_key rsa-e3 2048 3 && csr rsa-e3 corpus/csr/policy-rsa-exponent-3.der
ec_key p521 P-521 && csr p521 corpus/csr/policy-p521.der
openssl genpkey -algorithm ED25519 -out "$work/ed25519.key" && csr ed25519 corpus/csr/policy-ed25519.der
# Proof of possession fails: the last signature octet flipped.
python3 -c 'import sys; b = bytearray(open(sys.argv[1], "rb").read()); b[-1] ^= 1; sys.stdout.buffer.write(b)' \
    corpus/csr/p256.der >corpus/csr/bad-signature.der

# --- ocsp_request: a test CA, two of its certificates (one with a 20-octet serial whose top bit
# is set) and one from another CA.
mkdir -p corpus/ocsp_request fixtures
ec_key ca P-256
openssl req -x509 -new -key "$work/ca.key" -subj "/C=US/O=Signet Fuzz/CN=Signet Fuzz Test CA" -days 36500 \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign,digitalSignature \
    -out "$work/ca.pem"
openssl x509 -in "$work/ca.pem" -outform DER -out fixtures/ocsp-ca.der
openssl pkcs8 -topk8 -nocrypt -in "$work/ca.key" -outform DER -out fixtures/ocsp-ca.pk8
ec_key other P-256
openssl req -x509 -new -key "$work/other.key" -subj "/CN=Some Other CA" -days 36500 -out "$work/other.pem"
leaf() { # name, serial, issuer
    ec_key "$1" P-256
    openssl req -new -key "$work/$1.key" -subj "/CN=$1" -out "$work/$1.csr"
    openssl x509 -req -in "$work/$1.csr" -CA "$work/$3.pem" -CAkey "$work/$3.key" -set_serial "$2" -days 3650 \
        -out "$work/$1.pem" 2>/dev/null
}
leaf leaf1 0x1122334455667788 ca
leaf leaf2 0x8123456789abcdef0123456789abcdef01234567 ca
leaf foreign 7 other
ocsp() { local out=$1; shift; openssl ocsp "$@" -reqout "corpus/ocsp_request/$out" >/dev/null; }
ocsp sha1-nonce.der -issuer "$work/ca.pem" -cert "$work/leaf1.pem"
ocsp sha1-no-nonce.der -issuer "$work/ca.pem" -cert "$work/leaf1.pem" -no_nonce
ocsp sha256-nonce.der -issuer "$work/ca.pem" -sha256 -cert "$work/leaf1.pem"
ocsp sha512-serial20.der -issuer "$work/ca.pem" -sha512 -cert "$work/leaf2.pem" -no_nonce
ocsp two-certs.der -issuer "$work/ca.pem" -cert "$work/leaf1.pem" -cert "$work/leaf2.pem"
ocsp by-serial.der -issuer "$work/ca.pem" -serial 0x0123 -no_nonce
ocsp foreign-issuer.der -issuer "$work/other.pem" -cert "$work/foreign.pem"
ocsp signed.der -issuer "$work/ca.pem" -cert "$work/leaf1.pem" -signer "$work/leaf1.pem" -signkey "$work/leaf1.key"

# --- form_inputs: the first byte picks the parser (see fuzz_targets/form_inputs.rs), fields are
# separated by newlines.
mkdir -p corpus/form_inputs
form() { printf '%s' "$2" >"corpus/form_inputs/$1"; }
form phone-nanp 'a(703) 555-0123'
form phone-intl 'a+44 20 7946 0958'
form zip-plus4 'b22203-1234'
form state 'c va'
form address $'d1600 Pennsylvania Ave NW\nSuite 100\nWashington\nDC\n20500'
form po 'ePO-2026/0042.A'
form card 'f4111 1111 1111 1111'
form activation 'gABCD-EFGH-JKMN-PQRS'
form application-id 'h0123-4567-89AB'
form password $'iCorrect-Horse-Battery-9\njane.doe@example.gov'
form common-name 'jJane Q. Doe'
form email 'kJane.Doe+eca@Example.GOV'
form organization 'lAcme Aerospace, Inc.'
form dns-name 'mwww.Example.com.'
form tracking-ups $'nups\n1Z999AA10123456784'
form tracking-usps $'nusps\nEA123456789US'
form document 'op123-456-789'

# --- acme_jws: request bodies as an ACME client signs them, made with josepy and cryptography
# (the libraries certbot signs with): new-account with a jwk and an External Account Binding,
# RS256/ES256/ES384 keys, a kid request, POST-as-GET, and a tampered signature.
mkdir -p corpus/acme_jws
python3 - corpus/acme_jws <<'PY'
import json, sys
import josepy as jose
from cryptography.hazmat.primitives.asymmetric import ec, rsa

out = sys.argv[1]
URL = "https://ca.example/acme/"

def b64(b):
    return jose.b64.b64encode(b).decode()

def body(key, alg, url, payload, kid=None, nonce="bm9uY2U"):
    header = {"alg": alg.name, "nonce": nonce, "url": url}
    if kid:
        header["kid"] = kid
    else:
        header["jwk"] = key.public_key().to_partial_json()
    protected = b64(json.dumps(header).encode())
    payload_b64 = b64(payload)
    sig = alg.sign(key.key, f"{protected}.{payload_b64}".encode())
    return {"protected": protected, "payload": payload_b64, "signature": b64(sig)}

def eab(account_key, kid, hmac_key, url):
    protected = b64(json.dumps({"alg": "HS256", "kid": kid, "url": url}).encode())
    payload = b64(json.dumps(account_key.public_key().to_partial_json()).encode())
    mac = jose.HS256.sign(jose.JWKOct(key=hmac_key).key, f"{protected}.{payload}".encode())
    return {"protected": protected, "payload": payload, "signature": b64(mac)}

def write(name, obj):
    with open(f"{out}/{name}.json", "w") as f:
        json.dump(obj, f)

keys = {
    "es256": (jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1())), jose.ES256),
    "es384": (jose.JWKEC(key=ec.generate_private_key(ec.SECP384R1())), jose.ES384),
    "rs256": (jose.JWKRSA(key=rsa.generate_private_key(65537, 2048)), jose.RS256),
}
for name, (key, alg) in keys.items():
    new_account = URL + "new-account"
    payload = {"termsOfServiceAgreed": True, "contact": ["mailto:ops@acme.example"],
               "externalAccountBinding": eab(key, "asb9UwvDJCYtCs-L", b"\x07" * 32, new_account)}
    write(f"new-account-{name}", body(key, alg, new_account, json.dumps(payload).encode()))
key, alg = keys["es256"]
order = {"identifiers": [{"type": "dns", "value": "device.acme.example"}]}
write("new-order-kid", body(key, alg, URL + "new-order", json.dumps(order).encode(), kid=URL + "account/7"))
write("post-as-get", body(key, alg, URL + "order/3", b"", kid=URL + "account/7"))
tampered = body(key, alg, URL + "new-account", b'{"onlyReturnExisting":true}')
tampered["signature"] = tampered["signature"][:-2] + ("AA" if not tampered["signature"].endswith("AA") else "BA")
write("bad-signature", tampered)
PY
