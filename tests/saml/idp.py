"""A real SAML 2.0 IdP on loopback standing in for login.gov.pl in the tests (issue #13).

pysaml2 7.5.5 parses the AuthnRequests and ArtifactResolves and builds the Responses and
artifacts; Debian's xmlsec1 signs, verifies and encrypts to RSA keys (pysaml2 calls it, and so
does this file where pysaml2 cannot do what login.gov.pl does); python-xmlsec (libxmlsec1 1.3
from its PyPI wheel) encrypts by ECDH-ES to EC keys, which xmlsec1 1.2.37 cannot. Run it with
the python that tests/saml/setup.sh prints:

  PY tests/saml/idp.py keys DIR --port IDP_PORT
      IdP keys (idp-rsa.*: RSA 3072, idp-ec.*: P-256), census-login's SP keys (sp-sign.*:
      P-256, sp-enc.*: P-256, sp-enc-rsa.*: RSA 3072), all PEM, and idp-metadata-{rsa,ec}.xml;
      for the artifact back channel over mutual TLS: tls-ca.crt, idp-tls.* (server, 127.0.0.1),
      sp-tls.* (client), and with --ars-tls-port N idp-metadata-{rsa,ec}-tls.xml (ARS on https).
  PY tests/saml/idp.py serve DIR --port IDP_PORT --sp-metadata-url URL [--sig rsa|ec]
                        [--ars-tls-port N]
      serves 127.0.0.1:IDP_PORT (and, with --ars-tls-port, the same over TLS that requires a
      client certificate from tls-ca) and prints READY. Endpoints:
        GET  /sso/redirect  a signed AuthnRequest (HTTP-Redirect; the query-string signature is
                            checked against the SP metadata's signing certificate, else 400);
                            answers at once, no login page: an auto-submitting POST form or a
                            302 with SAMLart, per the behaviour set with /control
        POST /ars           SOAP ArtifactResolve, signed by the SP (else 400 with a SOAP fault);
                            each artifact resolves once
        POST /control       JSON behaviour for the following logins (unset keys: the defaults)
        GET  /control       the behaviour now;   GET /health  200

The SP metadata (ACS endpoints, use="signing" and use="encryption" certificates) is fetched
from --sp-metadata-url at the first login, so census-login may start after the IdP is ready.

Attacks (/control "attack"; each makes exactly the one thing its name says wrong):
  tamper                the PESEL changed after signing (when the assertion is encrypted and
                        signed: changed inside, before encryption; encrypted and unsigned:
                        the ciphertext changed after the Response was signed)
  xsw                   signature wrapping: signed Response: an unsigned evil Response with an
                        evil Assertion (another PESEL) wraps the untouched signed Response in
                        its Extensions; only the Assertion signed: the evil unsigned Assertion
                        takes the signed one's place and the signed one moves into Extensions
  unsigned              no signature at all
  expired               Conditions and SubjectConfirmationData NotOnOrAfter 10 minutes ago
  wrong_audience        the Audience is another SP's
  wrong_recipient       the SubjectConfirmationData Recipient is another URL (Destination stays)
  wrong_in_response_to  InResponseTo (Response and SubjectConfirmationData) is another ID
"""

import argparse
import base64
import datetime
import functools
import hashlib
import html
import json
import os
import re
import secrets
import ssl
import subprocess
import sys
import tempfile
import threading
import urllib.request
import xml.etree.ElementTree as ET
import zlib
from socketserver import ThreadingMixIn
from urllib.parse import unquote, urlencode
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

XMLSEC = "/usr/bin/xmlsec1"
NS = {
    "md": "urn:oasis:names:tc:SAML:2.0:metadata",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
    "samlp": "urn:oasis:names:tc:SAML:2.0:protocol",
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
    "soap": "http://schemas.xmlsoap.org/soap/envelope/",
}
BINDING_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
BINDING_ARTIFACT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact"
BINDING_REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
BINDING_SOAP = "urn:oasis:names:tc:SAML:2.0:bindings:SOAP"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
AES256_GCM = "http://www.w3.org/2009/xmlenc11#aes256-gcm"
EIDAS = "http://eidas.europa.eu/attributes/naturalperson/"
# Another valid PESEL of the demo registry: what a tampered or wrapped message claims.
EVIL_PESEL = "10210532057"
DEFAULTS = {
    "pesel": "97071225308",
    "loa": "http://eidas.europa.eu/LoA/substantial",
    "binding": "post",
    "encrypt": False,
    "sign_response": True,
    "sign_assertion": True,
    "attack": "none",
}
ATTACKS = ("none", "tamper", "xsw", "unsigned", "expired", "wrong_audience", "wrong_recipient",
           "wrong_in_response_to")


def die(msg):
    print(f"idp.py: {msg}", file=sys.stderr)
    sys.exit(2)


def cert_body(pem):
    """The base64 of a PEM certificate, on one line (for metadata and KeyInfo)."""
    return "".join(l for l in pem.strip().splitlines() if "-----" not in l)


def strip_decl(xml):
    return xml.split("?>", 1)[1].lstrip() if xml.lstrip().startswith("<?xml") else xml


# ---- keys ------------------------------------------------------------------------------------

def cmd_keys(args):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID

    os.makedirs(args.dir, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)

    def write(name, key, cn):
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=3650))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        with open(os.path.join(args.dir, name + ".key"), "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        with open(os.path.join(args.dir, name + ".crt"), "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))

    # Mutual TLS on the artifact back channel (--ars-tls-port): a CA, the IdP's server
    # certificate for 127.0.0.1 and census-login's client certificate, both from that CA.
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-tls-ca")])
    ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=1))
               .not_valid_after(now + datetime.timedelta(days=3650))
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                            content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False,
                                            encipher_only=False, decipher_only=False), critical=True)
               .sign(ca_key, hashes.SHA256()))
    with open(os.path.join(args.dir, "tls-ca.crt"), "wb") as f:
        f.write(ca_cert.public_bytes(serialization.Encoding.PEM))

    def write_leaf(name, cn, usage, san=None):
        key = ec.generate_private_key(ec.SECP256R1())
        b = (x509.CertificateBuilder()
             .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
             .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(days=1))
             .not_valid_after(now + datetime.timedelta(days=365))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        if san:
            b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
        with open(os.path.join(args.dir, name + ".key"), "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        with open(os.path.join(args.dir, name + ".crt"), "wb") as f:
            f.write(b.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))

    import ipaddress
    from cryptography.x509.oid import ExtendedKeyUsageOID
    write_leaf("idp-tls", "127.0.0.1", ExtendedKeyUsageOID.SERVER_AUTH,
               [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    write_leaf("sp-tls", "census-login-artifact-client", ExtendedKeyUsageOID.CLIENT_AUTH)

    write("idp-rsa", rsa.generate_private_key(65537, 3072), "test-idp-rsa")
    write("idp-ec", ec.generate_private_key(ec.SECP256R1()), "test-idp-ec")
    write("sp-sign", ec.generate_private_key(ec.SECP256R1()), "census-login-sp-signing")
    # login.gov.pl's profile: an EC encryption key (ECDH-ES); RSA (RSA-OAEP) is the other kind.
    write("sp-enc", ec.generate_private_key(ec.SECP256R1()), "census-login-sp-encryption")
    write("sp-enc-rsa", rsa.generate_private_key(65537, 3072), "census-login-sp-encryption-rsa")
    base = f"http://127.0.0.1:{args.port}"
    variants = [(sig, "", f"{base}/ars") for sig in ("rsa", "ec")]
    if args.ars_tls_port:
        variants += [(sig, "-tls", f"https://127.0.0.1:{args.ars_tls_port}/ars") for sig in ("rsa", "ec")]
    for sig, suffix, ars in variants:
        with open(os.path.join(args.dir, f"idp-{sig}.crt")) as f:
            cert = cert_body(f.read())
        md = (f'<md:EntityDescriptor xmlns:md="{NS["md"]}" xmlns:ds="{NS["ds"]}" entityID="{base}/idp">'
              f'<md:IDPSSODescriptor WantAuthnRequestsSigned="true" protocolSupportEnumeration="{NS["samlp"]}">'
              '<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data>'
              f'<ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>'
              f'<md:ArtifactResolutionService Binding="{BINDING_SOAP}" Location="{ars}" index="0" isDefault="true"/>'
              '<md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:transient</md:NameIDFormat>'
              f'<md:SingleSignOnService Binding="{BINDING_REDIRECT}" Location="{base}/sso/redirect"/>'
              '</md:IDPSSODescriptor></md:EntityDescriptor>\n')
        with open(os.path.join(args.dir, f"idp-metadata-{sig}{suffix}.xml"), "w") as f:
            f.write(md)


# ---- the SP as its metadata describes it -------------------------------------------------------

class SpMetadata:
    def __init__(self, xml):
        root = ET.fromstring(xml)
        if root.tag != f"{{{NS['md']}}}EntityDescriptor":
            raise ValueError(f"not an EntityDescriptor: {root.tag}")
        self.xml = xml
        self.entity_id = root.get("entityID")
        sp = root.find("md:SPSSODescriptor", NS)
        if sp is None:
            raise ValueError("no SPSSODescriptor")
        self.signing, self.encryption = [], []
        for kd in sp.findall("md:KeyDescriptor", NS):
            cert = kd.find("ds:KeyInfo/ds:X509Data/ds:X509Certificate", NS)
            if cert is None:
                continue
            body = "".join(cert.text.split())
            if kd.get("use") in (None, "signing"):
                self.signing.append(body)
            if kd.get("use") in (None, "encryption"):
                self.encryption.append(body)
        self.acs = {}
        for a in sp.findall("md:AssertionConsumerService", NS):
            self.acs.setdefault(a.get("Binding"), a.get("Location"))
        if not self.signing:
            raise ValueError("no signing certificate in the SP metadata")


def pem(body):
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"


def load_cert(body):
    from cryptography import x509
    return x509.load_pem_x509_certificate(pem(body).encode())


# ---- the IdP -----------------------------------------------------------------------------------

class Idp:
    def __init__(self, args):
        import saml2.entity
        import saml2.xmldsig as xd

        # pysaml2 whitelists only RSA for XML signing; login.gov.pl signs with ECDSA P-256.
        if ("SIG_ECDSA_SHA256", xd.SIG_ECDSA_SHA256) not in saml2.entity.SIG_ALLOWED_ALG:
            saml2.entity.SIG_ALLOWED_ALG = saml2.entity.SIG_ALLOWED_ALG + (
                ("SIG_ECDSA_SHA256", xd.SIG_ECDSA_SHA256),)
        self.dir = os.path.abspath(args.dir)
        self.base = f"http://127.0.0.1:{args.port}"
        self.entity_id = self.base + "/idp"
        self.sig = args.sig
        self.key_file = os.path.join(self.dir, f"idp-{args.sig}.key")
        self.cert_file = os.path.join(self.dir, f"idp-{args.sig}.crt")
        for f in (self.key_file, self.cert_file):
            if not os.path.exists(f):
                die(f"{f} is missing: run `idp.py keys {args.dir} --port {args.port}` first")
        with open(self.cert_file) as f:
            self.cert = cert_body(f.read())
        self.sig_alg = ECDSA_SHA256 if args.sig == "ec" else RSA_SHA256
        self.sp_metadata_url = args.sp_metadata_url
        self.sp = None
        self.server = None
        self.control = dict(DEFAULTS)
        self.artifacts = {}
        self.lock = threading.Lock()

    # The SP metadata and the pysaml2 server, at the first login (census-login starts later).
    def ensure_sp(self):
        if self.sp is not None:
            return
        from saml2.config import IdPConfig
        from saml2.saml import NAME_FORMAT_URI, NAMEID_FORMAT_TRANSIENT
        from saml2.server import Server

        with urllib.request.urlopen(self.sp_metadata_url, timeout=10) as r:
            xml = r.read().decode()
        sp = SpMetadata(xml)
        md_file = os.path.join(self.dir, "sp-metadata.xml")
        with open(md_file, "w") as f:
            f.write(xml)
        conf = IdPConfig()
        conf.load({
            "entityid": self.entity_id,
            "xmlsec_binary": XMLSEC,
            "key_file": self.key_file,
            "cert_file": self.cert_file,
            "metadata": {"local": [md_file]},
            "service": {"idp": {
                "endpoints": {
                    "single_sign_on_service": [(self.base + "/sso/redirect", BINDING_REDIRECT)],
                    "artifact_resolution_service": [(self.base + "/ars", BINDING_SOAP)],
                },
                # Checked here, on the raw query string (pysaml2 re-encodes it and knows RSA only).
                "want_authn_requests_signed": False,
                "policy": {"default": {"lifetime": {"minutes": 5}, "attribute_restrictions": None,
                                       "name_form": NAME_FORMAT_URI}},
                "name_id_format": [NAMEID_FORMAT_TRANSIENT],
                # Inside service.idp: at the top level pysaml2 ignores them (rsa-sha1/sha1).
                "signing_algorithm": self.sig_alg,
                "digest_algorithm": SHA256,
            }},
        })
        self.server = Server(config=conf)
        self.sp = sp

    def set_control(self, body):
        new = dict(DEFAULTS)
        for k, v in body.items():
            if k not in DEFAULTS:
                raise ValueError(f"unknown key {k!r}")
            new[k] = v
        if new["pesel"] is not None and not isinstance(new["pesel"], str):
            raise ValueError("pesel: a string or null")
        if not isinstance(new["loa"], str):
            raise ValueError("loa: a string")
        if new["binding"] not in ("post", "artifact"):
            raise ValueError("binding: post or artifact")
        for k in ("encrypt", "sign_response", "sign_assertion"):
            if not isinstance(new[k], bool):
                raise ValueError(f"{k}: true or false")
        if new["attack"] not in ATTACKS:
            raise ValueError(f"attack: one of {', '.join(ATTACKS)}")
        self.control = new

    # -- the AuthnRequest --
    def verify_redirect(self, raw_query):
        """The HTTP-Redirect signature (SAML bindings 3.4.4.1): over the URL-encoded values
        exactly as sent, in the order SAMLRequest, RelayState, SigAlg."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

        raw = {}
        for part in raw_query.split("&"):
            k, _, v = part.partition("=")
            if k in raw:
                raise ValueError(f"{k} twice in the query")
            raw[k] = v
        for k in ("SAMLRequest", "SigAlg", "Signature"):
            if k not in raw:
                raise ValueError(f"unsigned AuthnRequest: no {k}")
        signed = "&".join(f"{k}={raw[k]}" for k in ("SAMLRequest", "RelayState", "SigAlg") if k in raw)
        sig_alg = unquote(raw["SigAlg"].replace("+", " "))
        signature = base64.b64decode(unquote(raw["Signature"].replace("+", " ")), validate=True)
        for body in self.sp.signing:
            key = load_cert(body).public_key()
            try:
                if isinstance(key, rsa.RSAPublicKey) and sig_alg == RSA_SHA256:
                    key.verify(signature, signed.encode(), padding.PKCS1v15(), hashes.SHA256())
                elif isinstance(key, ec.EllipticCurvePublicKey) and sig_alg == ECDSA_SHA256:
                    key.verify(signature, signed.encode(), ec.ECDSA(hashes.SHA256()))
                else:
                    continue
                return {k: unquote(v.replace("+", " ")) for k, v in raw.items()}
            except InvalidSignature:
                continue
        raise ValueError(f"AuthnRequest signature ({sig_alg}) does not verify with the SP's signing certificates")

    def sso(self, raw_query):
        from saml2 import BINDING_HTTP_REDIRECT

        q = self.verify_redirect(raw_query)
        req = self.server.parse_authn_request(q["SAMLRequest"], BINDING_HTTP_REDIRECT)
        msg = req.message
        if msg.issuer is None or msg.issuer.text != self.sp.entity_id:
            raise ValueError("AuthnRequest Issuer is not the SP of the metadata")
        relay = q.get("RelayState")
        ctl = self.control
        binding = BINDING_POST if ctl["binding"] == "post" else BINDING_ARTIFACT
        acs = self.sp.acs.get(binding)
        if not acs:
            raise ValueError(f"the SP metadata has no {binding} AssertionConsumerService")
        response = self.response(msg.id, acs, ctl)
        if ctl["binding"] == "post":
            b64 = base64.b64encode(response.encode()).decode()
            relay_input = (f'<input type="hidden" name="RelayState" value="{html.escape(relay)}"/>'
                           if relay is not None else "")
            page = ('<!DOCTYPE html><html><head><meta charset="utf-8"><title>login.gov.pl (test IdP)</title></head>'
                    '<body onload="document.forms[0].submit()">'
                    f'<form method="post" action="{html.escape(acs)}">'
                    f'<input type="hidden" name="SAMLResponse" value="{b64}"/>{relay_input}'
                    '<noscript><button type="submit">Continue</button></noscript></form></body></html>')
            return "200 OK", [("Content-Type", "text/html; charset=utf-8")], page.encode()
        art = self.server.use_artifact("-", 0)
        self.artifacts[art] = response
        params = {"SAMLart": art}
        if relay is not None:
            params["RelayState"] = relay
        loc = acs + ("&" if "?" in acs else "?") + urlencode(params)
        return "302 Found", [("Location", loc)], b""

    # -- the Response --
    def sign(self, xml, cls, node_id):
        from saml2.sigver import pre_signature_part
        # Distinct Signature Ids where signatures nest (Assertion in Response in ArtifactResponse).
        n = {"Assertion": 1, "Response": 2}.get(cls.rsplit(":", 1)[1], 3)
        tmpl = strip_decl(pre_signature_part(node_id, self.cert, n, sign_alg=self.sig_alg,
                                             digest_alg=SHA256).to_string().decode())
        xml = insert_after_issuer(xml, node_id, tmpl)
        return strip_decl(self.server.sec.sign_statement(xml, cls, node_id=node_id))

    def encrypt(self, response_xml, assertion_id):
        """The Assertion of that ID -> EncryptedAssertion to the SP's use="encryption"
        certificate, by what its key can open: EC -> login.gov.pl's ECDH-ES profile
        (encrypt_ecdh_es); RSA -> RSA-OAEP-MGF1P + AES-256-GCM by pysaml2 and Debian's xmlsec1
        (pysaml2's own default would be 3DES)."""
        from cryptography.hazmat.primitives.asymmetric import ec
        from saml2.sigver import pre_encryption_part
        if not self.sp.encryption:
            raise ValueError("no encryption certificate in the SP metadata")
        enc_cert = self.sp.encryption[0]
        a_start, a_end = element_span(response_xml, "Assertion", assertion_id)
        if isinstance(load_cert(enc_cert).public_key(), ec.EllipticCurvePublicKey):
            encrypted = encrypt_ecdh_es(response_xml[a_start:a_end], load_cert(enc_cert).public_key())
            return response_xml[:a_start] + encrypted + response_xml[a_end:]
        wrapped = (response_xml[:a_start] + f'<saml:EncryptedAssertion xmlns:saml="{NS["saml"]}">'
                   + response_xml[a_start:a_end] + "</saml:EncryptedAssertion>" + response_xml[a_end:])
        tmpl = str(pre_encryption_part(msg_enc=AES256_GCM, encrypt_cert=enc_cert))
        with tempfile.NamedTemporaryFile("w", suffix=".crt", dir=self.dir, delete=False) as f:
            f.write(pem(enc_cert))
        try:
            xpath = (f"//*[local-name()='EncryptedAssertion']/*[local-name()='Assertion'][@ID='{assertion_id}']")
            return strip_decl(self.server.sec.encrypt_assertion(wrapped, f.name, tmpl, key_type="aes-256",
                                                                node_xpath=xpath))
        finally:
            os.unlink(f.name)

    def response(self, request_id, acs, ctl):
        from saml2.saml import NameID, NAMEID_FORMAT_TRANSIENT

        attack = ctl["attack"]
        identity = person(ctl["pesel"])
        in_response_to = request_id if attack != "wrong_in_response_to" else "_" + secrets.token_hex(16)
        resp = self.server.create_authn_response(
            identity=identity, in_response_to=in_response_to, destination=acs,
            sp_entity_id=self.sp.entity_id, userid="test-person",
            name_id=NameID(format=NAMEID_FORMAT_TRANSIENT, text="_" + secrets.token_hex(16)),
            authn={"class_ref": ctl["loa"], "authn_auth": self.entity_id},
            sign_response=False, sign_assertion=False, encrypt_assertion=False)
        xml = strip_decl(str(resp))
        resp_id = re.search(r'<ns0:Response [^>]*?ID="([^"]+)"', xml).group(1)
        a_id = re.search(r'<ns1:Assertion [^>]*?ID="([^"]+)"', xml).group(1)
        # The Assertion declares its namespaces itself: it may be encrypted or moved alone.
        xml = xml.replace("<ns1:Assertion ", f'<ns1:Assertion xmlns:ns1="{NS["saml"]}" '
                          'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" ', 1)
        if f'Recipient="{acs}"' not in xml or f">{self.sp.entity_id}</ns1:Audience>" not in xml:
            raise RuntimeError("pysaml2's Response lacks the expected Recipient or Audience")
        if attack == "wrong_audience":
            xml = xml.replace(f">{self.sp.entity_id}</ns1:Audience>", ">urn:test:another-sp</ns1:Audience>")
        elif attack == "wrong_recipient":
            xml = xml.replace(f'Recipient="{acs}"', 'Recipient="http://127.0.0.1:9/saml/acs"')
        elif attack == "expired":
            now = datetime.datetime.now(datetime.timezone.utc)
            fmt = lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")
            xml = re.sub(r'NotOnOrAfter="[^"]*"', f'NotOnOrAfter="{fmt(now - datetime.timedelta(minutes=10))}"', xml)
            xml = re.sub(r'NotBefore="[^"]*"', f'NotBefore="{fmt(now - datetime.timedelta(minutes=15))}"', xml)

        sign_a = ctl["sign_assertion"] and attack != "unsigned"
        sign_r = ctl["sign_response"] and attack != "unsigned"
        pesel = ctl["pesel"]
        evil = None
        if attack == "xsw":
            a_start, a_end = element_span(xml, "Assertion", a_id)
            evil = (xml[a_start:a_end].replace(f'ID="{a_id}"', f'ID="_evil{secrets.token_hex(8)}"', 1)
                    .replace(f">{pesel}<", f">{EVIL_PESEL}<"))
        if sign_a:
            xml = self.sign(xml, "urn:oasis:names:tc:SAML:2.0:assertion:Assertion", a_id)
        if attack == "tamper" and ctl["encrypt"] and sign_a:
            xml = tamper_pesel(xml, pesel)
        if ctl["encrypt"]:
            xml = self.encrypt(xml, a_id)
            if evil is not None:
                evil_doc = self.encrypt(xml_wrap_response(evil), re.search(r'ID="([^"]+)"', evil).group(1))
                s, e = element_span(evil_doc, "EncryptedAssertion", None)
                evil = evil_doc[s:e]
        if attack == "xsw" and not sign_r:
            # The signed Assertion into Extensions; the evil one where a naive parser reads.
            tag = "EncryptedAssertion" if ctl["encrypt"] else "Assertion"
            s, e = element_span(xml, tag, None if ctl["encrypt"] else a_id)
            signed = xml[s:e]
            xml = xml[:s] + evil + xml[e:]
            xml = insert_after_issuer(xml, resp_id, f"<ns0:Extensions>{signed}</ns0:Extensions>")
        if sign_r:
            xml = self.sign(xml, "urn:oasis:names:tc:SAML:2.0:protocol:Response", resp_id)
        if attack == "xsw" and sign_r:
            # An unsigned evil Response wrapping the untouched signed one in its Extensions.
            evil_id = "_evil" + secrets.token_hex(8)
            head = re.match(r"<ns0:Response [^>]*>", xml).group(0)
            issuer = re.search(r"<ns1:Issuer[^>]*>[^<]*</ns1:Issuer>", xml).group(0)
            status = re.search(r"<ns0:Status>.*?</ns0:Status>", xml, re.S).group(0)
            xml = (head.replace(f'ID="{resp_id}"', f'ID="{evil_id}"') + issuer
                   + f"<ns0:Extensions>{xml}</ns0:Extensions>" + status + evil + "</ns0:Response>")
        if attack == "tamper" and not (ctl["encrypt"] and sign_a):
            if ctl["encrypt"]:
                # The Assertion is not signed: change the data's ciphertext (the last CipherValue).
                m = list(re.finditer(r"<(?:\w+:)?CipherValue>([A-Za-z0-9+/=\s]+)<", xml))[-1]
                i = m.start(1) + 8
                xml = xml[:i] + ("A" if xml[i] != "A" else "B") + xml[i + 1:]
            else:
                xml = tamper_pesel(xml, pesel)
        return xml

    # -- artifact resolution --
    def ars(self, body):
        soap = ET.fromstring(body)
        ar = soap.find("soap:Body/samlp:ArtifactResolve", NS)
        if ar is None:
            raise ValueError("no ArtifactResolve in the SOAP Body")
        ar_id = ar.get("ID")
        sig = ar.find("ds:Signature", NS)
        if sig is None:
            raise ValueError("unsigned ArtifactResolve")
        ref = sig.find("ds:SignedInfo/ds:Reference", NS)
        if ref is None or ref.get("URI") != "#" + ar_id:
            raise ValueError("the ArtifactResolve signature does not cover the ArtifactResolve")
        issuer = ar.find("saml:Issuer", NS)
        if issuer is None or issuer.text != self.sp.entity_id:
            raise ValueError("ArtifactResolve Issuer is not the SP of the metadata")
        xpath = ("/*[local-name()='Envelope']/*[local-name()='Body']/*[local-name()='ArtifactResolve']"
                 "/*[local-name()='Signature']")
        if not any(xmlsec_verify(body, pem(c), ["urn:oasis:names:tc:SAML:2.0:protocol:ArtifactResolve"], xpath)
                   for c in self.sp.signing):
            raise ValueError("the ArtifactResolve signature does not verify with the SP's signing certificates")
        art = ar.find("samlp:Artifact", NS)
        # Each artifact resolves once; an unknown one gets a Success with no message (SAML core 3.5.2).
        inner = self.artifacts.pop(art.text.strip(), "") if art is not None and art.text else ""
        aid = "_" + secrets.token_hex(16)
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        xml = (f'<ns0:ArtifactResponse xmlns:ns0="{NS["samlp"]}" xmlns:ns1="{NS["saml"]}" ID="{aid}" '
               f'InResponseTo="{ar_id}" Version="2.0" IssueInstant="{now}">'
               f'<ns1:Issuer>{self.entity_id}</ns1:Issuer>'
               f'<ns0:Status><ns0:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></ns0:Status>'
               f"{inner}</ns0:ArtifactResponse>")
        signed = self.sign(xml, "urn:oasis:names:tc:SAML:2.0:protocol:ArtifactResponse", aid)
        return (f'<soap:Envelope xmlns:soap="{NS["soap"]}"><soap:Body>{signed}</soap:Body></soap:Envelope>')


def encrypt_ecdh_es(assertion_xml, recipient_public_key):
    """An Assertion (declaring its namespaces itself) -> an EncryptedAssertion as login.gov.pl
    sends it: data aes256-gcm, its key wrapped by kw-aes256 under a key agreed by ECDH-ES with
    a fresh (ephemeral) key on the recipient's curve, through ConcatKDF (SHA-256) with the
    node's parameter form (a 4-byte length, then the value). Debian's xmlsec1 1.2.37 cannot do
    ECDH-ES, so this is python-xmlsec with its own libxmlsec1 1.3 (PyPI wheel): an
    implementation that is not census-login's. It does not write the ephemeral public key into
    the empty OriginatorKeyInfo/KeyValue, so that is filled in here (it is not part of any
    computation: only the agreed secret and the ConcatKDF parameters are)."""
    import xmlsec
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric import ec
    from lxml import etree

    if xmlsec.get_libxmlsec_version() < (1, 3, 0):
        raise RuntimeError(f"python-xmlsec links libxmlsec1 {xmlsec.get_libxmlsec_version()}: "
                           "ECDH-ES needs >= 1.3 (the PyPI wheel xmlsec==1.3.17 bundles 1.3.9)")
    curve = recipient_public_key.curve
    oid = {"secp256r1": "1.2.840.10045.3.1.7", "secp384r1": "1.3.132.0.34",
           "secp521r1": "1.3.132.0.35"}[curve.name]
    ephemeral = ec.generate_private_key(curve)

    def param(value):
        b = value.encode()
        return (len(b).to_bytes(4, "big") + b).hex().upper()

    xenc, ds = "http://www.w3.org/2001/04/xmlenc#", NS["ds"]
    dsig11, xenc11 = "http://www.w3.org/2009/xmldsig11#", "http://www.w3.org/2009/xmlenc11#"
    tmpl = etree.fromstring(
        f'<xenc:EncryptedData xmlns:xenc="{xenc}" xmlns:ds="{ds}" xmlns:xenc11="{xenc11}" '
        f'xmlns:dsig11="{dsig11}" Id="_{secrets.token_hex(16)}" Type="{xenc}Element">'
        f'<xenc:EncryptionMethod Algorithm="{AES256_GCM}"/><ds:KeyInfo><xenc:EncryptedKey>'
        f'<xenc:EncryptionMethod Algorithm="{xenc}kw-aes256"/><ds:KeyInfo>'
        f'<xenc:AgreementMethod Algorithm="{xenc11}ECDH-ES">'
        f'<xenc11:KeyDerivationMethod Algorithm="{xenc11}ConcatKDF">'
        f'<xenc11:ConcatKDFParams AlgorithmID="{param(xenc + "kw-aes256")}" '
        f'PartyUInfo="{param("test-idp")}" PartyVInfo="{param("census-login")}">'
        f'<ds:DigestMethod Algorithm="{SHA256}"/></xenc11:ConcatKDFParams></xenc11:KeyDerivationMethod>'
        '<xenc:OriginatorKeyInfo><ds:KeyName>originator</ds:KeyName><ds:KeyValue/></xenc:OriginatorKeyInfo>'
        '<xenc:RecipientKeyInfo><ds:KeyName>recipient</ds:KeyName></xenc:RecipientKeyInfo>'
        '</xenc:AgreementMethod></ds:KeyInfo><xenc:CipherData><xenc:CipherValue/></xenc:CipherData>'
        '</xenc:EncryptedKey></ds:KeyInfo><xenc:CipherData><xenc:CipherValue/></xenc:CipherData>'
        '</xenc:EncryptedData>')
    keys = xmlsec.KeysManager()
    for name, pem_bytes in (
            ("originator", ephemeral.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8,
                                                   ser.NoEncryption())),
            ("recipient", recipient_public_key.public_bytes(ser.Encoding.PEM,
                                                            ser.PublicFormat.SubjectPublicKeyInfo))):
        key = xmlsec.Key.from_memory(pem_bytes, xmlsec.KeyFormat.PEM)
        key.name = name
        keys.add_key(key)
    doc = etree.fromstring(f'<saml:EncryptedAssertion xmlns:saml="{NS["saml"]}">{assertion_xml}'
                           '</saml:EncryptedAssertion>')
    ctx = xmlsec.EncryptionContext(keys)
    ctx.key = xmlsec.Key.generate(xmlsec.constants.KeyDataAes, 256, xmlsec.constants.KeyDataTypeSession)
    ctx.encrypt_xml(tmpl, doc[0])
    # What the node sends: the ephemeral key as an ECKeyValue, no key names.
    q = lambda ns, local: f"{{{ns}}}{local}"
    agreement = doc.find(f".//{q(xenc, 'AgreementMethod')}")
    agreement.remove(agreement.find(q(xenc, "RecipientKeyInfo")))
    originator = agreement.find(q(xenc, "OriginatorKeyInfo"))
    originator.remove(originator.find(q(ds, "KeyName")))
    ec_key_value = etree.SubElement(originator.find(q(ds, "KeyValue")), q(dsig11, "ECKeyValue"))
    etree.SubElement(ec_key_value, q(dsig11, "NamedCurve")).set("URI", "urn:oid:" + oid)
    etree.SubElement(ec_key_value, q(dsig11, "PublicKey")).text = base64.b64encode(
        ephemeral.public_key().public_bytes(ser.Encoding.X962, ser.PublicFormat.UncompressedPoint)).decode()
    return etree.tostring(doc).decode()


def person(pesel):
    identity = {EIDAS + "CurrentGivenName": ["Jan"], EIDAS + "CurrentFamilyName": ["Kowalski"],
                EIDAS + "DateOfBirth": [birth_date(pesel)]}
    if pesel is not None:
        identity[EIDAS + "PersonIdentifier"] = [pesel]
    return identity


def birth_date(pesel):
    """From a PESEL's first six digits (the century in the month); 1990-01-01 otherwise."""
    if pesel and re.fullmatch(r"\d{6}.*", pesel):
        yy, mm, dd = int(pesel[0:2]), int(pesel[2:4]), int(pesel[4:6])
        century = {0: 1900, 1: 2000, 2: 2100, 3: 2200, 4: 1800}.get(mm // 20)
        try:
            return datetime.date(century + yy, mm % 20, dd).isoformat()
        except (TypeError, ValueError):
            pass
    return "1990-01-01"


def tamper_pesel(xml, pesel):
    if pesel is None or f">{pesel}<" not in xml:
        raise ValueError("tamper needs a PESEL attribute to change")
    return xml.replace(f">{pesel}<", f">{EVIL_PESEL}<")


def element_span(xml, local, elem_id):
    """Start and end offsets of the element named `local` (any prefix) with that ID (or the
    first one): pysaml2's and xmlsec1's output has no nested element of the same name."""
    idp = f'[^>]*?\\bID="{re.escape(elem_id)}"' if elem_id else ""
    m = re.search(rf"<((?:\w+:)?){local}\b{idp}[^>]*>", xml)
    if not m:
        raise ValueError(f"no {local} {elem_id or ''} in the message")
    end = xml.index(f"</{m.group(1)}{local}>", m.end()) + len(f"</{m.group(1)}{local}>")
    return m.start(), end


def insert_after_issuer(xml, elem_id, fragment):
    """Inserts `fragment` right after the Issuer child of the element with that ID (where
    SAML puts the ds:Signature and samlp:Extensions)."""
    m = re.search(rf'\bID="{re.escape(elem_id)}"[^>]*>\s*<((?:\w+:)?)Issuer\b', xml)
    if not m:
        raise ValueError(f"no Issuer in the element {elem_id}")
    close = f"</{m.group(1)}Issuer>"
    at = xml.index(close, m.end()) + len(close)
    return xml[:at] + fragment + xml[at:]


def xml_wrap_response(assertion):
    return f'<ns0:Response xmlns:ns0="{NS["samlp"]}">{assertion}</ns0:Response>'


def xmlsec_verify(xml, cert_pem, id_attrs, node_xpath):
    """True when xmlsec1 verifies the signature at node_xpath with that certificate."""
    with tempfile.TemporaryDirectory() as d:
        doc, cert = os.path.join(d, "doc.xml"), os.path.join(d, "cert.pem")
        with open(doc, "w") as f:
            f.write(xml)
        with open(cert, "w") as f:
            f.write(cert_pem)
        cmd = [XMLSEC, "--verify", "--pubkey-cert-pem", cert]
        for a in id_attrs:
            cmd += ["--id-attr:ID", a]
        cmd += ["--node-xpath", node_xpath, doc]
        return subprocess.run(cmd, capture_output=True).returncode == 0


# ---- HTTP ----------------------------------------------------------------------------------

def soap_fault(msg):
    return (f'<soap:Envelope xmlns:soap="{NS["soap"]}"><soap:Body><soap:Fault><faultcode>soap:Client</faultcode>'
            f"<faultstring>{html.escape(msg)}</faultstring></soap:Fault></soap:Body></soap:Envelope>").encode()


def make_app(idp):
    def app(env, start):
        path, method = env["PATH_INFO"], env["REQUEST_METHOD"]
        length = int(env.get("CONTENT_LENGTH") or 0)
        body = env["wsgi.input"].read(length) if length else b""
        text = lambda s: ("text/plain; charset=utf-8", s.encode())
        try:
            with idp.lock:
                if path == "/health" and method == "GET":
                    status, headers, out = "200 OK", [("Content-Type", "text/plain")], b"ok"
                elif path == "/control" and method == "POST":
                    idp.set_control(json.loads(body or b"{}"))
                    status, headers, out = "200 OK", [("Content-Type", "application/json")], json.dumps(idp.control).encode()
                elif path == "/control" and method == "GET":
                    status, headers, out = "200 OK", [("Content-Type", "application/json")], json.dumps(idp.control).encode()
                elif path == "/sso/redirect" and method == "GET":
                    idp.ensure_sp()
                    status, headers, out = idp.sso(env.get("QUERY_STRING", ""))
                elif path == "/ars" and method == "POST":
                    idp.ensure_sp()
                    try:
                        out = idp.ars(body.decode()).encode()
                        status, headers = "200 OK", [("Content-Type", "text/xml; charset=utf-8")]
                    except Exception as e:  # a refused ArtifactResolve: a SOAP fault
                        log(f"ars refused: {type(e).__name__}: {e}")
                        status, headers, out = "400 Bad Request", [("Content-Type", "text/xml")], soap_fault(str(e))
                else:
                    status, headers, out = "404 Not Found", [("Content-Type", "text/plain")], b"not found"
        except Exception as e:  # refusals reach the test as 400 with the reason
            log(f"{path} refused: {type(e).__name__}: {e}")
            ctype, out = text(f"{type(e).__name__}: {e}")
            status, headers = "400 Bad Request", [("Content-Type", ctype)]
        start(status, headers + [("Content-Length", str(len(out)))])
        return [out]
    return app


def log(msg):
    print(f"idp.py: {msg}", file=sys.stderr, flush=True)


class ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class TlsServer(ThreadingServer):
    """TLS per connection, in the connection's thread: a failed handshake (no client
    certificate, an untrusted one) ends that connection only."""
    ssl_context = None

    def process_request_thread(self, request, client_address):
        try:
            request = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            log(f"TLS handshake refused: {e}")
            self.shutdown_request(request)
            return
        super().process_request_thread(request, client_address)


class Quiet(WSGIRequestHandler):
    def log_message(self, fmt, *args):
        log(fmt % args)


def cmd_serve(args):
    idp = Idp(args)
    httpd = make_server("127.0.0.1", args.port, make_app(idp), server_class=ThreadingServer, handler_class=Quiet)
    if args.ars_tls_port:
        # The same endpoints over TLS that demands a client certificate from tls-ca: the
        # handshake fails without one (as the node's artifact resolution service would).
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(os.path.join(args.dir, "idp-tls.crt"), os.path.join(args.dir, "idp-tls.key"))
        ctx.load_verify_locations(os.path.join(args.dir, "tls-ca.crt"))
        ctx.verify_mode = ssl.CERT_REQUIRED
        tls = make_server("127.0.0.1", args.ars_tls_port, make_app(idp), server_class=TlsServer,
                          handler_class=Quiet)
        tls.ssl_context = ctx
        threading.Thread(target=tls.serve_forever, daemon=True).start()
    print("READY", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("keys")
    k.add_argument("dir")
    k.add_argument("--port", type=int, required=True)
    k.add_argument("--ars-tls-port", type=int, help="also write idp-metadata-{rsa,ec}-tls.xml: ARS over mutual TLS")
    s = sub.add_parser("serve")
    s.add_argument("dir")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--sp-metadata-url", required=True)
    s.add_argument("--sig", choices=("rsa", "ec"), default="rsa")
    s.add_argument("--ars-tls-port", type=int, help="also serve on this port over TLS with a required client certificate")
    args = p.parse_args()
    if not os.access(XMLSEC, os.X_OK):
        die(f"{XMLSEC} not found: apt-get install -y xmlsec1")
    {"keys": cmd_keys, "serve": cmd_serve}[args.cmd](args)


if __name__ == "__main__":
    main()
