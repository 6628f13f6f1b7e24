// A local OpenID Connect provider for the demo and the tests: the certified `oidc-provider`
// from npm, with the identities in an accounts file.  Its login page (oidc-provider's
// development interactions) asks for an identity name and ignores the password: it stands
// in for a centre's real identity provider (Keycloak, MyAccessID, eduGAIN), never for one.
//
//   node provider.mjs CONFIG.json
// CONFIG: {"issuer": "http://127.0.0.1:PORT", "port": PORT,
//          "clients": [{"client_id", "client_secret", "redirect_uris": [...]}],
//          "accounts": {"<sub>": {"preferred_username", "email", "name"}}}
import crypto from 'node:crypto';
import fs from 'node:fs';
import Provider from 'oidc-provider';

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
// A signing key of its own for each run (the package's development keys cannot sign here).
const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'aifw-local', use: 'sig', alg: 'RS256' };

const provider = new Provider(config.issuer, {
  clients: config.clients.map((client) => ({
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    ...client,
  })),
  async findAccount(ctx, id) {
    const claims = config.accounts[id];
    if (!claims) return undefined;
    return { accountId: id, async claims() { return { sub: id, email_verified: true, ...claims }; } };
  },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['preferred_username', 'name'] },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  jwks: { keys: [signingKey] },
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => false },
});
provider.proxy = false;
for (const event of ['server_error', 'authorization.error', 'grant.error', 'userinfo.error']) {
  provider.on(event, (ctx, error) => console.error(`${event}: ${error.message}`, error.stack));
}
provider.listen(config.port, '127.0.0.1', () => console.log(`oidc-provider: ${config.issuer}`));
