// Validates Gateway API objects against the schemas of the Gateway API CRDs, as compiled
// (ajv) by the npm package @kubernetes-models/gateway-api (version in package.json; its
// validators are generated from the upstream CRDs' openAPIV3Schema).
//   node validate.mjs < docs.json      (a JSON array of manifests)
// Prints a JSON array: one {"kind", "name", "ok", "errors"} per Gateway API object; other
// kinds are skipped. Used by tests/deploy/validate_manifests.py; install with `npm ci`.
import { readFileSync } from "node:fs";
import * as v1 from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1";
import * as v1beta1 from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1beta1";

const versions = { "gateway.networking.k8s.io/v1": v1, "gateway.networking.k8s.io/v1beta1": v1beta1 };
const kinds = ["Gateway", "GatewayClass", "HTTPRoute", "GRPCRoute", "ReferenceGrant"];
const docs = JSON.parse(readFileSync(0, "utf8"));
const out = [];
for (const doc of docs) {
  if (!doc || !String(doc.apiVersion || "").startsWith("gateway.networking.k8s.io/")) continue;
  const name = doc.metadata?.name ?? "?";
  const Model = kinds.includes(doc.kind) ? versions[doc.apiVersion]?.[doc.kind] : undefined;
  if (!Model) {
    out.push({ kind: doc.kind, name, ok: false, errors: [`no schema for ${doc.apiVersion} ${doc.kind}`] });
    continue;
  }
  try {
    new Model(doc).validate();
    out.push({ kind: doc.kind, name, ok: true, errors: [] });
  } catch (e) {
    const errors = (e.errors || [e]).map((x) => (x.instancePath !== undefined ? `${x.instancePath || "/"} ${x.message}` : String(x.message || x)));
    out.push({ kind: doc.kind, name, ok: false, errors });
  }
}
process.stdout.write(JSON.stringify(out));
