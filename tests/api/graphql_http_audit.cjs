// The GraphQL over HTTP spec's server audit (npm package graphql-http) against a running
// server: prints each audit that is not ok, then the counts as one JSON line; exits 1 on
// any warning or error. Usage: NODE_PATH=<node_modules> node graphql_http_audit.cjs URL
const { auditServer } = require('graphql-http');

(async () => {
  const results = await auditServer({ url: process.argv[2] });
  const counts = { ok: 0, warn: 0, error: 0 };
  for (const result of results) {
    counts[result.status] += 1;
    if (result.status !== 'ok') {
      console.log(`${result.status} ${result.id} ${result.name}: ${result.reason}`);
    }
  }
  console.log(JSON.stringify(counts));
  process.exit(counts.warn || counts.error ? 1 : 0);
})();
