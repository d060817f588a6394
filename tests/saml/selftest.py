"""Self-test of the test IdP (tests/saml/idp.py): it works, and it can refuse.

Makes keys, serves a fake census-login SP metadata, starts `idp.py serve`, sends AuthnRequests
built by pysaml2's client and signed over the query string with the SP's P-256 key, then
checks the answers with xmlsec1 (an oracle independent of the IdP's own code paths):
POST and Artifact bindings, plain and encrypted (RSA-OAEP; ECDH-ES is opened separately by
pyca/cryptography), both signature algorithms, every attack
doing what its name says, and the refusals (unsigned or badly signed AuthnRequest,
unsigned ArtifactResolve, an artifact resolved twice). Exit status 0 only when all pass.
"""

import base64
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zlib
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, quote, urlencode, urlparse

HERE = os.path.dirname(os.path.abspath(__file__))
XMLSEC = "/usr/bin/xmlsec1"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
FAILURES = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILURES.append(what)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cert_body(path):
    return "".join(l for l in open(path).read().splitlines() if "-----" not in l)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def http(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        r = OPENER.open(req, timeout=30)
        return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def xmlsec(args, doc):
    with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as f:
        f.write(doc)
    try:
        r = subprocess.run([XMLSEC] + args + [f.name], capture_output=True, text=True)
        return r.returncode, r.stdout
    finally:
        os.unlink(f.name)


IDS = ["--id-attr:ID", "urn:oasis:names:tc:SAML:2.0:protocol:Response",
       "--id-attr:ID", "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
       "--id-attr:ID", "urn:oasis:names:tc:SAML:2.0:protocol:ArtifactResponse"]


def verifies(doc, cert, xpath):
    return xmlsec(["--verify", "--pubkey-cert-pem", cert] + IDS + ["--node-xpath", xpath], doc)[0] == 0


def path(*names):
    return "".join(f"/*[local-name()='{n}']" for n in names)


def main():
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    work = tempfile.mkdtemp(prefix="saml-idp-selftest-")
    keys = os.path.join(work, "keys")
    idp_port, sp_port = free_port(), free_port()
    idp = f"http://127.0.0.1:{idp_port}"
    sp = f"http://127.0.0.1:{sp_port}"
    sp_entity, acs_post, acs_art = sp + "/saml/metadata", sp + "/saml/acs", sp + "/saml/acs"
    subprocess.run([sys.executable, os.path.join(HERE, "idp.py"), "keys", keys, "--port", str(idp_port)], check=True)
    K = lambda n: os.path.join(keys, n)
    for n in ("idp-rsa.key", "idp-rsa.crt", "idp-ec.key", "idp-ec.crt", "sp-sign.key", "sp-sign.crt",
              "sp-enc.key", "sp-enc.crt", "sp-enc-rsa.key", "sp-enc-rsa.crt", "idp-metadata-rsa.xml",
              "idp-metadata-ec.xml"):
        check(os.path.getsize(K(n)) > 0, f"keys wrote {n}")

    # The SP metadata as census-login serves it (src/saml: XML declaration, EncryptionMethods,
    # the Artifact ACS first).
    sp_md = ('<?xml version="1.0" encoding="UTF-8"?>\n<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
             f'xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{sp_entity}">'
             '<md:SPSSODescriptor AuthnRequestsSigned="true" WantAssertionsSigned="true" '
             'protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
             f'<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert_body(K("sp-sign.crt"))}'
             '</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>'
             f'<md:KeyDescriptor use="encryption"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert_body(K("sp-enc-rsa.crt"))}'
             '</ds:X509Certificate></ds:X509Data></ds:KeyInfo>'
             '<md:EncryptionMethod Algorithm="http://www.w3.org/2009/xmlenc11#aes256-gcm"/>'
             '<md:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"/></md:KeyDescriptor>'
             '<md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:unspecified</md:NameIDFormat>'
             f'<md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact" Location="{acs_art}" index="0" isDefault="true"/>'
             f'<md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{acs_post}" index="1"/>'
             '</md:SPSSODescriptor></md:EntityDescriptor>')

    class SpHandler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = sp_md.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/samlmetadata+xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    sp_server = HTTPServer(("127.0.0.1", sp_port), SpHandler)
    threading.Thread(target=sp_server.serve_forever, daemon=True).start()

    sp_key = serialization.load_pem_private_key(open(K("sp-sign.key"), "rb").read(), None)
    md_file = os.path.join(work, "sp-md.xml")
    open(md_file, "w").write(sp_md)

    ecdh_es_opens_by_the_spec(K)
    for sig in ("rsa", "ec"):
        proc = subprocess.Popen([sys.executable, os.path.join(HERE, "idp.py"), "serve", keys, "--port", str(idp_port),
                                 "--sp-metadata-url", sp_entity, "--sig", sig],
                                stdout=subprocess.PIPE, stderr=open(os.path.join(work, f"idp-{sig}.log"), "w"), text=True)
        try:
            line = proc.stdout.readline().strip()
            check(line == "READY", f"[{sig}] serve prints READY (got {line!r})")
            if line != "READY":
                continue
            run_cases(sig, idp, keys, sp_entity, acs_post, acs_art, sp_key, K)
        finally:
            proc.terminate()
            proc.wait(10)
    sp_server.shutdown()
    if FAILURES:
        print(f"\n{len(FAILURES)} check(s) FAILED (work dir {work}):\n  " + "\n  ".join(FAILURES))
        sys.exit(1)
    print("\nall checks passed")


def ecdh_es_opens_by_the_spec(K):
    """The IdP's ECDH-ES encryption (login.gov.pl's profile, made by libxmlsec1 1.3) opened by
    another implementation: pyca/cryptography's ECDH, ConcatKDFHash (NIST SP 800-56A), AES
    key unwrap and AES-GCM, with the ConcatKDF parameters read as XML Encryption 1.1 says
    (a leading padding-bits octet, then the bytes). Another key does not open it."""
    import xml.etree.ElementTree as ET
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap
    from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
    sys.path.insert(0, HERE)
    import idp

    sp_key = serialization.load_pem_private_key(open(K("sp-enc.key"), "rb").read(), None)
    assertion = ('<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_a1">'
                 '<saml:Issuer>test</saml:Issuer><saml:Subject>97071225308</saml:Subject></saml:Assertion>')
    enc = idp.encrypt_ecdh_es(assertion, sp_key.public_key())
    check("97071225308" not in enc and "xmlenc11#ECDH-ES" in enc and "xmlenc#kw-aes256" in enc
          and "xmlenc11#aes256-gcm" in enc and "ECKeyValue" in enc and "KeyName" not in enc,
          "[ecdh-es] the Assertion is encrypted as login.gov.pl does (ECDH-ES, kw-aes256, aes256-gcm)")
    ns = {"xenc": "http://www.w3.org/2001/04/xmlenc#", "xenc11": "http://www.w3.org/2009/xmlenc11#",
          "ds": "http://www.w3.org/2000/09/xmldsig#", "dsig11": "http://www.w3.org/2009/xmldsig11#"}
    root = ET.fromstring(enc)
    data = root.find("xenc:EncryptedData", ns)
    ek = data.find("ds:KeyInfo/xenc:EncryptedKey", ns)
    params = ek.find("ds:KeyInfo/xenc:AgreementMethod/xenc11:KeyDerivationMethod/xenc11:ConcatKDFParams", ns)
    point = base64.b64decode(ek.find("ds:KeyInfo/xenc:AgreementMethod/xenc:OriginatorKeyInfo/ds:KeyValue/"
                                     "dsig11:ECKeyValue/dsig11:PublicKey", ns).text)
    fixed = b""
    for name in ("AlgorithmID", "PartyUInfo", "PartyVInfo"):
        raw = bytes.fromhex(params.get(name))
        check(raw[:1] == b"\x00", f"[ecdh-es] {name} starts with a zero padding-bits octet")
        fixed += raw[1:]
    wrapped = base64.b64decode(ek.find("xenc:CipherData/xenc:CipherValue", ns).text)
    blob = base64.b64decode("".join(data.find("xenc:CipherData/xenc:CipherValue", ns).text.split()))

    def open_with(key):
        z = key.exchange(ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(key.curve, point))
        kek = ConcatKDFHash(hashes.SHA256(), 32, fixed).derive(z)
        cek = aes_key_unwrap(kek, wrapped)
        return AESGCM(cek).decrypt(blob[:12], blob[12:], None).decode()

    check(open_with(sp_key) == assertion, "[ecdh-es] pyca/cryptography opens it to the very Assertion")
    try:
        open_with(ec.generate_private_key(ec.SECP256R1()))
        check(False, "[ecdh-es] another P-256 key does not open it")
    except InvalidUnwrap:
        check(True, "[ecdh-es] another P-256 key does not open it")


def run_cases(sig, idp, keys, sp_entity, acs_post, acs_art, sp_key, K):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    idp_cert = K(f"idp-{sig}.crt")
    check(http("GET", idp + "/health")[0] == 200, f"[{sig}] /health 200")
    counter = [0]

    def authn_request():
        counter[0] += 1
        rid = f"_req{sig}{counter[0]}{int(time.time() * 1000)}"
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        # The shape census-login sends (src/saml: eIDAS extensions and LoA, Artifact binding).
        attr = ('<eidas:RequestedAttribute Name="http://eidas.europa.eu/attributes/naturalperson/{}" '
                'NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:uri" isRequired="true"/>')
        xml = ('<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
               'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" xmlns:eidas="http://eidas.europa.eu/saml-extensions" '
               f'ID="{rid}" Version="2.0" IssueInstant="{now}" Destination="{idp}/sso/redirect" '
               f'AssertionConsumerServiceURL="{acs_art}" '
               'ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact" ForceAuthn="true" IsPassive="false">'
               f'<saml:Issuer>{sp_entity}</saml:Issuer>'
               '<samlp:Extensions><eidas:SPType>public</eidas:SPType><eidas:RequestedAttributes>'
               + "".join(attr.format(n) for n in ("PersonIdentifier", "CurrentGivenName", "CurrentFamilyName", "DateOfBirth"))
               + '</eidas:RequestedAttributes></samlp:Extensions>'
               '<samlp:NameIDPolicy Format="urn:oasis:names:tc:SAML:2.0:nameid-format:unspecified" AllowCreate="true"/>'
               '<samlp:RequestedAuthnContext Comparison="minimum"><saml:AuthnContextClassRef>'
               'http://eidas.europa.eu/LoA/substantial</saml:AuthnContextClassRef></samlp:RequestedAuthnContext>'
               '</samlp:AuthnRequest>')
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        deflated = c.compress(xml.encode()) + c.flush()
        return rid, base64.b64encode(deflated).decode()

    def sso_url(relay="relay-1", signed=True, tamper_relay=False):
        rid, req = authn_request()
        q = f"SAMLRequest={quote(req, safe='')}&RelayState={quote(relay, safe='')}&SigAlg={quote(ECDSA_SHA256, safe='')}"
        signature = sp_key.sign(q.encode(), ec.ECDSA(hashes.SHA256()))
        if tamper_relay:
            q = q.replace("RelayState=" + quote(relay, safe=""), "RelayState=other")
        if signed:
            q += "&Signature=" + quote(base64.b64encode(signature).decode(), safe="")
        return rid, f"{idp}/sso/redirect?{q}"

    def control(**kw):
        s, _, body = http("POST", idp + "/control", json.dumps(kw).encode(), {"Content-Type": "application/json"})
        assert s == 200, body

    def post_login():
        rid, url = sso_url()
        s, _, body = http("GET", url)
        if s != 200:
            return rid, s, body, None
        action = re.search(r'<form method="post" action="([^"]+)"', body).group(1)
        resp = base64.b64decode(re.search(r'name="SAMLResponse" value="([^"]+)"', body).group(1)).decode()
        relay = re.search(r'name="RelayState" value="([^"]+)"', body).group(1)
        check(action == acs_post and relay == "relay-1", f"[{sig}] POST form goes to the POST ACS with the RelayState")
        return rid, s, body, resp

    def resolve(art, signed=True):
        aid = f"_ar{counter[0]}{int(time.time() * 1000)}"
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        tmpl = ('<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo>'
                '<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>'
                f'<ds:SignatureMethod Algorithm="{ECDSA_SHA256}"/><ds:Reference URI="#{aid}"><ds:Transforms>'
                '<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>'
                '<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms>'
                '<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue/>'
                '</ds:Reference></ds:SignedInfo><ds:SignatureValue/></ds:Signature>') if signed else ""
        doc = ('<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
               '<samlp:ArtifactResolve xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
               f'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{aid}" Version="2.0" IssueInstant="{now}" '
               f'Destination="{idp}/ars"><saml:Issuer>{sp_entity}</saml:Issuer>{tmpl}'
               f'<samlp:Artifact>{art}</samlp:Artifact></samlp:ArtifactResolve></soap:Body></soap:Envelope>')
        if signed:
            rc, doc = xmlsec(["--sign", "--privkey-pem", K("sp-sign.key"), "--id-attr:ID",
                              "urn:oasis:names:tc:SAML:2.0:protocol:ArtifactResolve"], doc)
            assert rc == 0, "xmlsec1 could not sign the ArtifactResolve"
        return aid, http("POST", idp + "/ars", doc.encode(), {"Content-Type": "text/xml", "SOAPAction": '""'})

    RESP_SIG = path("Response", "Signature")
    ASSERT_SIG = path("Response", "Assertion", "Signature")

    # -- refusals of the AuthnRequest --
    control()
    s, _, _ = http("GET", sso_url(signed=False)[1])
    check(s == 400, f"[{sig}] an unsigned AuthnRequest gets 400 (got {s})")
    s, _, _ = http("GET", sso_url(tamper_relay=True)[1])
    check(s == 400, f"[{sig}] an AuthnRequest whose RelayState changed after signing gets 400 (got {s})")

    # -- POST, plain, both signed --
    rid, s, body, resp = post_login()
    check(s == 200 and resp is not None, f"[{sig}] POST binding answers 200 with a SAMLResponse")
    if resp:
        check(verifies(resp, idp_cert, RESP_SIG), f"[{sig}] POST Response signature verifies (xmlsec1)")
        check(verifies(resp, idp_cert, ASSERT_SIG), f"[{sig}] POST Assertion signature verifies (xmlsec1)")
        check(not verifies(resp, K("idp-ec.crt" if sig == "rsa" else "idp-rsa.crt"), RESP_SIG),
              f"[{sig}] ... and not with the other IdP key")
        check(f'InResponseTo="{rid}"' in resp, f"[{sig}] InResponseTo is the request ID")
        check(f">{sp_entity}</" in resp and f'Recipient="{acs_post}"' in resp and f'Destination="{acs_post}"' in resp,
              f"[{sig}] Audience, Recipient, Destination")
        check(">97071225308<" in resp and "PersonIdentifier" in resp and ">http://eidas.europa.eu/LoA/substantial<" in resp,
              f"[{sig}] PersonIdentifier and the LoA")
        alg = "ecdsa-sha256" if sig == "ec" else "rsa-sha256"
        check(resp.count(f"xmldsig-more#{alg}") == 2 and "xmlenc#sha256" in resp and "xml-exc-c14n" in resp,
              f"[{sig}] {alg}, sha256 digests, exclusive c14n")

    # -- Artifact, encrypted --
    control(binding="artifact", encrypt=True)
    rid, url = sso_url()
    s, headers, _ = http("GET", url)
    loc = headers.get("Location", "")
    check(s == 302 and loc.startswith(acs_art + "?"), f"[{sig}] Artifact binding: 302 to the artifact ACS (got {s} {loc[:80]})")
    if s == 302:
        q = parse_qs(urlparse(loc).query)
        art = q["SAMLart"][0]
        check(q.get("RelayState") == ["relay-1"] and base64.b64decode(art)[:2] == b"\x00\x04",
              f"[{sig}] SAMLart is a type 0x0004 artifact, RelayState kept")
        _, (s2, _, bad) = resolve(art, signed=False)
        check(s2 == 400 and "Fault" in bad, f"[{sig}] an unsigned ArtifactResolve gets 400 with a SOAP fault")
        aid, (s2, _, soap) = resolve(art)
        check(s2 == 200, f"[{sig}] signed ArtifactResolve answered 200 (got {s2}: {soap[:200]})")
        art_sig = path("Envelope", "Body", "ArtifactResponse", "Signature")
        inner_sig = path("Envelope", "Body", "ArtifactResponse", "Response", "Signature")
        check(verifies(soap, idp_cert, art_sig), f"[{sig}] ArtifactResponse signature verifies (xmlsec1)")
        check(verifies(soap, idp_cert, inner_sig), f"[{sig}] the wrapped Response's signature verifies byte-exact")
        check(f'InResponseTo="{aid}"' in soap and f'InResponseTo="{rid}"' in soap, f"[{sig}] both InResponseTo")
        check("EncryptedAssertion" in soap and "xmlenc11#aes256-gcm" in soap and "rsa-oaep-mgf1p" in soap
              and "97071225308" not in soap, f"[{sig}] the Assertion is encrypted (RSA-OAEP, AES-256-GCM)")
        rc, plain = xmlsec(["--decrypt", "--privkey-pem", K("sp-enc-rsa.key")], soap)
        check(rc == 0 and ">97071225308<" in plain, f"[{sig}] xmlsec1 decrypts it with the SP's encryption key")
        if rc == 0:
            check(verifies(plain, idp_cert, path("Envelope", "Body", "ArtifactResponse", "Response", "EncryptedAssertion", "Assertion", "Signature")),
                  f"[{sig}] the decrypted Assertion's signature verifies")
        _, (s3, _, again) = resolve(art)
        check(s3 == 200 and "<ns0:Response" not in again and "Response " not in again.split("ArtifactResponse", 1)[1].replace("ArtifactResponse", ""),
              f"[{sig}] the artifact resolves once (second time: no message)")

    # -- attacks (POST, plain) --
    def attack(name, **kw):
        control(attack=name, **kw)
        return post_login()

    _, s, _, resp = attack("tamper")
    check(resp and ">10210532057<" in resp and not verifies(resp, idp_cert, ASSERT_SIG)
          and not verifies(resp, idp_cert, RESP_SIG), f"[{sig}] tamper: other PESEL, signatures broken")
    _, s, _, resp = attack("unsigned")
    check(resp and "Signature" not in resp and ">97071225308<" in resp, f"[{sig}] unsigned: no signature")
    rid, s, _, resp = attack("expired")
    if resp:
        naf = re.findall(r'NotOnOrAfter="([^"]+)"', resp)
        past = all(time.strptime(t, "%Y-%m-%dT%H:%M:%SZ") < time.gmtime(time.time() - 500) for t in naf)
        check(len(naf) >= 2 and past and verifies(resp, idp_cert, RESP_SIG) and verifies(resp, idp_cert, ASSERT_SIG),
              f"[{sig}] expired: NotOnOrAfter ~10 min ago, signed properly")
    rid, s, _, resp = attack("wrong_audience")
    check(resp and f">{sp_entity}</" not in resp and "urn:test:another-sp" in resp and f'InResponseTo="{rid}"' in resp
          and verifies(resp, idp_cert, RESP_SIG), f"[{sig}] wrong_audience, signed properly")
    rid, s, _, resp = attack("wrong_recipient")
    check(resp and f'Recipient="{acs_post}"' not in resp and f'Destination="{acs_post}"' in resp
          and verifies(resp, idp_cert, ASSERT_SIG), f"[{sig}] wrong_recipient, signed properly")
    rid, s, _, resp = attack("wrong_in_response_to")
    check(resp and rid not in resp and resp.count("InResponseTo=") == 2 and verifies(resp, idp_cert, RESP_SIG),
          f"[{sig}] wrong_in_response_to, signed properly")
    rid, s, _, resp = attack("xsw")
    if resp:
        # The outer (evil) Response has no signature of its own; the signed one is intact inside.
        outer_first = re.search(r"<ns1:Assertion [^>]*>.*?</ns1:Assertion>", resp.split("</ns0:Extensions>", 1)[1], re.S)
        check(outer_first and ">10210532057<" in outer_first.group(0) and "Signature" not in outer_first.group(0),
              f"[{sig}] xsw: the Response's own Assertion is the evil unsigned one")
        check(verifies(resp, idp_cert, path("Response", "Extensions", "Response", "Signature")),
              f"[{sig}] xsw: the wrapped original Response still verifies")
    rid, s, _, resp = attack("xsw", sign_response=False)
    if resp:
        check(verifies(resp, idp_cert, path("Response", "Extensions", "Assertion", "Signature"))
              and re.search(r"</ns0:Extensions>.*<ns1:Assertion [^>]*>(?:(?!Signature).)*>10210532057<", resp, re.S),
              f"[{sig}] xsw (assertion signed only): signed one in Extensions, evil one in its place")
    rid, s, _, resp = attack("none", pesel=None, loa="http://eidas.europa.eu/LoA/low")
    check(resp and "PersonIdentifier" not in resp and ">http://eidas.europa.eu/LoA/low<" in resp
          and verifies(resp, idp_cert, RESP_SIG), f"[{sig}] no PESEL attribute, LoA low")
    rid, s, _, resp = attack("tamper", encrypt=True)
    if resp:
        rc, plain = xmlsec(["--decrypt", "--privkey-pem", K("sp-enc-rsa.key")], resp)
        check(verifies(resp, idp_cert, RESP_SIG) and rc == 0 and ">10210532057<" in plain
              and "Signature" in plain.split("EncryptedAssertion", 1)[1]
              and not verifies(plain, idp_cert, path("Response", "EncryptedAssertion", "Assertion", "Signature")),
              f"[{sig}] tamper encrypted: Response signed, the Assertion inside tampered")
    if sig == "ec":
        # Every attack with every signing and encryption choice yields a message (no IdP crash),
        # and the attacks that keep signatures leave at least one verifying.
        for name in ("none", "tamper", "xsw", "unsigned", "expired", "wrong_audience", "wrong_recipient",
                     "wrong_in_response_to"):
            for enc in (False, True):
                for sr, sa in ((True, True), (True, False), (False, True)):
                    _, s, body, resp = attack(name, encrypt=enc, sign_response=sr, sign_assertion=sa)
                    what = f"[{sig}] {name} encrypt={enc} sign_response={sr} sign_assertion={sa}"
                    check(resp is not None, f"{what}: answered ({s} {'' if resp else body[:200]})")
                    if resp and name in ("none", "expired", "wrong_audience", "wrong_recipient", "wrong_in_response_to"):
                        if enc and not sr:  # only the Assertion, inside the encryption, is signed
                            rc, resp = xmlsec(["--decrypt", "--privkey-pem", K("sp-enc-rsa.key")], resp)
                            xpath = path("Response", "EncryptedAssertion", "Assertion", "Signature")
                        else:
                            xpath = RESP_SIG if sr else ASSERT_SIG
                        check(verifies(resp, idp_cert, xpath), f"{what}: signed properly")
    s, _, _ = http("POST", idp + "/control", b'{"attack": "nope"}')
    check(s == 400, f"[{sig}] /control refuses an unknown attack")
    control()


if __name__ == "__main__":
    main()
