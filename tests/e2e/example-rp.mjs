#!/usr/bin/env node
// A small relying party of census-login, as the census form will be: the certified
// `openid-client` library, authorization code flow with PKCE (S256), ID token signatures
// checked against the provider's JWKS, userinfo, and RP-initiated logout.
//
// Run it against a local census-login (the demo client of config/default.toml):
//   tests/e2e/example-rp.sh                 # starts both; open http://127.0.0.1:8081/
//   node tests/e2e/example-rp.mjs           # only the RP (census-login already on :8080)
// Environment: RP_ISSUER (http://localhost:8080), RP_CLIENT_ID (census-form-demo),
// RP_CLIENT_SECRET (census-form-demo-secret), RP_PORT (8081), RP_SCOPE (openid census).
//
// The e2e suite (oidc.test.mjs) imports startRp() and drives it through Chromium.
import http from 'node:http';
import crypto from 'node:crypto';
import { pathToFileURL } from 'node:url';
import * as client from 'openid-client';

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(title, body) {
  return `<!DOCTYPE html><html lang="pl"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>body{font-family:sans-serif;max-width:50rem;margin:2rem auto;padding:0 1rem}pre{background:#f4f4f4;padding:1rem;overflow:auto}</style>
</head><body><h1>${esc(title)}</h1>${body}</body></html>`;
}

// Changes a claim of the ID token in the token response, keeping the signature:
// the library must refuse it.
function tamperingFetch(tokenEndpoint) {
  return async (url, options) => {
    const res = await fetch(url, options);
    if (String(url) !== tokenEndpoint || !res.ok) return res;
    const body = await res.json();
    const [h, p, s] = body.id_token.split('.');
    const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
    claims.sub = 'someone-else';
    body.id_token = [h, Buffer.from(JSON.stringify(claims)).toString('base64url'), s].join('.');
    return new Response(JSON.stringify(body), { status: res.status, headers: { 'content-type': 'application/json' } });
  };
}

/**
 * Starts the RP on http://host:port. Returns { url, close }.
 * The provider is discovered at `issuer` on first use, so the RP may start first.
 */
export async function startRp({
  issuer, clientId, clientSecret, port = 8081, host = '127.0.0.1', scope = 'openid census',
}) {
  const base = `http://${host}:${port}`;
  const redirectUri = `${base}/callback`;
  const postLogoutUri = `${base}/`;
  let config;
  async function getConfig() {
    // allowInsecureRequests: the local provider speaks plain HTTP.
    // enableNonRepudiationChecks: verify ID token signatures against the JWKS too.
    config ??= await client.discovery(new URL(issuer), clientId, undefined,
      client.ClientSecretBasic(clientSecret),
      { execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks] });
    return config;
  }
  const sessions = new Map();

  async function handle(req, res) {
    const url = new URL(req.url, base);
    let sid = /(?:^|;\s*)rp_sid=([\w-]+)/.exec(req.headers.cookie || '')?.[1];
    if (!sid || !sessions.has(sid)) {
      sid = crypto.randomUUID();
      sessions.set(sid, {});
      res.setHeader('Set-Cookie', `rp_sid=${sid}; HttpOnly; SameSite=Lax; Path=/`);
    }
    const s = sessions.get(sid);
    const send = (status, title, body) => {
      res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(page(title, body));
    };
    const redirect = (to) => { res.writeHead(302, { location: to, 'cache-control': 'no-store' }); res.end(); };

    if (url.pathname === '/') {
      if (url.searchParams.get('state') && url.searchParams.get('state') === s.logoutState) {
        delete s.logoutState;
        return send(200, 'Formularz spisowy (przykład)', '<p id="logged-out">Wylogowano.</p><p><a id="login" href="/login">Zaloguj się</a></p>');
      }
      if (s.claims) {
        return send(200, 'Formularz spisowy (przykład)',
          `<p>Zalogowano. Oto co formularz wie o osobie:</p>
<h2>ID token (zweryfikowany)</h2><pre id="claims">${esc(JSON.stringify(s.claims, null, 2))}</pre>
<h2>userinfo</h2><pre id="userinfo">${esc(JSON.stringify(s.userinfo, null, 2))}</pre>
<p><a id="logout" href="/logout">Wyloguj</a> · <a id="login" href="/login">Zaloguj ponownie</a></p>`);
      }
      return send(200, 'Formularz spisowy (przykład)', '<p><a id="login" href="/login">Zaloguj się</a> przez census-login.</p>');
    }

    if (url.pathname === '/login') {
      const cfg = await getConfig();
      s.verifier = client.randomPKCECodeVerifier();
      s.state = client.randomState();
      s.nonce = client.randomNonce();
      s.tamper = url.searchParams.get('tamper') === '1';
      const params = {
        redirect_uri: redirectUri, scope, state: s.state, nonce: s.nonce,
        code_challenge: await client.calculatePKCECodeChallenge(s.verifier), code_challenge_method: 'S256',
      };
      for (const k of ['prompt', 'max_age']) if (url.searchParams.get(k)) params[k] = url.searchParams.get(k);
      return redirect(client.buildAuthorizationUrl(cfg, params).href);
    }

    if (url.pathname === '/callback') {
      let cfg = await getConfig();
      if (s.tamper) {
        cfg = await client.discovery(new URL(issuer), clientId, undefined, client.ClientSecretBasic(clientSecret),
          { execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks] });
        cfg[client.customFetch] = tamperingFetch(cfg.serverMetadata().token_endpoint);
      }
      try {
        const tokens = await client.authorizationCodeGrant(cfg, url, {
          pkceCodeVerifier: s.verifier, expectedState: s.state, expectedNonce: s.nonce, idTokenExpected: true,
        });
        const claims = tokens.claims();
        s.claims = claims;
        s.idToken = tokens.id_token;
        s.userinfo = await client.fetchUserInfo(cfg, tokens.access_token, claims.sub);
        return redirect('/');
      } catch (e) {
        const cause = e.cause instanceof Error ? ` (${e.cause.code || ''}: ${e.cause.message})` : '';
        return send(400, 'Logowanie nie powiodło się', `<p id="rp-error">${esc(e.code || '')}: ${esc(e.message)}${esc(cause)}</p>`);
      } finally {
        delete s.verifier; delete s.state; delete s.nonce; delete s.tamper;
      }
    }

    if (url.pathname === '/logout') {
      const cfg = await getConfig();
      s.logoutState = client.randomState();
      const to = client.buildEndSessionUrl(cfg, {
        id_token_hint: s.idToken, post_logout_redirect_uri: postLogoutUri, state: s.logoutState,
      });
      delete s.claims; delete s.userinfo; delete s.idToken;
      return redirect(to.href);
    }
    return send(404, 'Nie ma takiej strony', '');
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((e) => {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`RP error: ${e.message}`);
    });
  });
  await new Promise((resolve, reject) => server.once('error', reject).listen(port, host, resolve));
  return { url: base, close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(r); }) };
}

if (import.meta.url === pathToFileURL(process.argv[1] || '').href) {
  const env = process.env;
  const rp = await startRp({
    issuer: env.RP_ISSUER || 'http://localhost:8080',
    clientId: env.RP_CLIENT_ID || 'census-form-demo',
    clientSecret: env.RP_CLIENT_SECRET || 'census-form-demo-secret',
    port: Number(env.RP_PORT || 8081),
    scope: env.RP_SCOPE || 'openid census',
  });
  console.log(`example RP on ${rp.url}/ (provider ${env.RP_ISSUER || 'http://localhost:8080'}); Ctrl-C stops it`);
}
